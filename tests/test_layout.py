"""Layering (docs/DESIGN.md): ace_core imports none of storage/query/tasks/flows/prefect;
storage none of query/tasks/flows/prefect, and its build side not its read side; query none
of tasks/flows/prefect; tasks none of query/flows. Short files and functions in every product
package. No pickle loading anywhere."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ace_core": {"prefect", "flows", "tasks", "storage", "query"},
    "storage": {"prefect", "flows", "tasks", "query"},
    "query": {"prefect", "flows", "tasks"},
    "tasks": {"flows", "query"},
}
PRODUCT = ("ace_core", "storage", "query", "tasks", "flows")
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60


def imported_modules(source: str) -> set[str]:
    """Dotted names of the modules a module imports (anywhere in it, lazily too)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_of(module: str) -> str:
    """The layer a dotted module name belongs to: ``ace_index.storage.store`` -> storage."""
    parts = module.split(".")
    return parts[1] if parts[0] == "ace_index" and len(parts) > 1 else parts[0]


def imported_packages(source: str) -> set[str]:
    """Layers and top-level packages a module imports (anywhere in it, lazily too)."""
    return {layer_of(name) for name in imported_modules(source)}


def forbidden_imports(package: str) -> dict[str, list[str]]:
    out = {}
    for p in (ROOT / package).rglob("*.py"):
        bad = imported_packages(p.read_text()) & FORBIDDEN[package]
        if bad:
            out[str(p.relative_to(ROOT))] = sorted(bad)
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below_it(package):
    assert forbidden_imports(package) == {}


@pytest.mark.parametrize(
    "package, line",
    [
        ("ace_core", "from ace_index.storage.store import Store"),
        ("ace_core", "import prefect"),
        ("storage", "    from ace_index.tasks.build import fit_ids"),
        ("storage", "from prefect import task"),
        ("tasks", "from ace_index.flows.index import index_corpus"),
        ("storage", "from ace_index.query.search import Searcher"),
        ("tasks", "from ace_index.query.loaded import load_version"),
        ("query", "from ace_index.tasks.build import fit_ids"),
    ],
)
def test_the_layering_check_catches_a_forbidden_import(package, line):
    assert imported_packages(f"def f():\n    {line.strip()}\n") & FORBIDDEN[package]


BARE = {"storage", "query", "tasks", "flows"}  # importable only as ace_index.X (issue 43)


def bare_imports() -> dict[str, list[str]]:
    out = {}
    for folder in (*PRODUCT, "tests", "bench", "scripts"):
        for p in (ROOT / folder).rglob("*.py"):
            found = {m for m in imported_modules(p.read_text()) if m.split(".")[0] in BARE}
            if found:
                out[str(p.relative_to(ROOT))] = sorted(found)
    return out


def test_nothing_imports_a_layer_by_its_bare_name():
    assert bare_imports() == {}
    assert imported_modules("def f():\n    from storage.store import Store\n") & {"storage.store"}


def test_storage_build_side_does_not_import_its_read_side():
    reads = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p.read_text())
                                         if layer_of(m) == "storage" and ".catalog" in m)
        for p in (ROOT / "storage" / "build").rglob("*.py")
    }  # fmt: skip
    assert {f: m for f, m in reads.items() if m} == {}


def test_packages_are_grouped_by_role():
    def folders(package):
        return {p.name for p in (ROOT / package).iterdir() if (p / "__init__.py").exists()}

    assert {"media", "ids", "retrieval"} <= folders("ace_core")
    assert {"store", "formats", "build", "catalog"} <= folders("storage")
    assert not [p.name for p in (ROOT / "storage").glob("*.py") if p.name != "__init__.py"]
    assert (ROOT / "flows" / "cli" / "__init__.py").exists()


def product_files():
    return [p for pkg in PRODUCT for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_no_product_file_is_long():
    long_files = {
        str(p.relative_to(ROOT)): n
        for p in product_files()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long_files == {}


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Functions (and methods) over ``limit`` lines, docstrings and decorators included."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if (n := node.end_lineno - start + 1) > limit:
                out[f"{node.name}:{node.lineno}"] = n
    return out


def test_no_product_function_is_long():
    found = {str(p.relative_to(ROOT)): f for p in product_files()
             if (f := long_functions(p.read_text()))}  # fmt: skip
    assert found == {}


def test_the_function_size_check_counts_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert long_functions("def f():\n" + body) == {"f:1": 61}
    assert long_functions("def f():\n" + body[: -len("    x59 = 59\n")]) == {}


def test_no_pickle_loading_in_project_code():
    for pkg in PRODUCT:
        for p in (ROOT / pkg).rglob("*.py"):
            for line in p.read_text().splitlines():
                if "torch.load" + "(" in line:  # spelled apart so this line is not a hit
                    assert "weights_only=True" in line, f"{p}: {line.strip()}"


def unprefixed(module: str) -> str:
    """``ace_index.storage.store`` -> ``storage.store`` (the folder it lives in)."""
    return module.removeprefix("ace_index.")


def module_graph() -> dict[str, set[str]]:
    """Each product module -> the product modules it imports (anywhere in it, lazily and for
    type checking too; ``from package import module`` counts the module, not the package)."""
    mods = {}
    for package in PRODUCT:
        for p in (ROOT / package).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {}
    for name, p in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {unprefixed(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = unprefixed(node.module)
                subs = {f"{module}.{a.name}" for a in node.names} & set(mods)
                deps |= subs | ({module} if len(subs) < len(node.names) else set())
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on.discard(group[-1])
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_anywhere_in_the_product():
    graph = module_graph()
    assert sum(map(len, graph.values())) > 300  # the product's own imports are all seen
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_circle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
