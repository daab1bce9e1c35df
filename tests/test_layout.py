"""Layering (docs/DESIGN.md): ace_core imports none of storage/tasks/flows/prefect; storage
none of tasks/flows/prefect; tasks none of flows. No pickle loading anywhere."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ace_core": {"prefect", "flows", "tasks", "storage"},
    "storage": {"prefect", "flows", "tasks"},
    "tasks": {"flows"},
}


def imported_packages(source: str) -> set[str]:
    """Top-level package names a module imports (anywhere in it, lazily too)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


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
        ("ace_core", "from storage.store import Store"),
        ("ace_core", "import prefect"),
        ("storage", "    from tasks.build import fit_ids"),
        ("storage", "from prefect import task"),
        ("tasks", "from flows.index import index_corpus"),
    ],
)
def test_the_layering_check_catches_a_forbidden_import(package, line):
    assert imported_packages(f"def f():\n    {line.strip()}\n") & FORBIDDEN[package]


def test_ace_core_is_grouped_by_stage_with_short_files():
    folders = {p.name for p in (ROOT / "ace_core").iterdir() if p.is_dir()}
    assert {"media", "ids", "retrieval"} <= folders
    long_files = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "ace_core").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 320
    }
    assert long_files == {}


def test_no_pickle_loading_in_project_code():
    for pkg in ("ace_core", "storage", "tasks", "flows"):
        for p in (ROOT / pkg).rglob("*.py"):
            for line in p.read_text().splitlines():
                if "torch.load" + "(" in line:  # spelled apart so this line is not a hit
                    assert "weights_only=True" in line, f"{p}: {line.strip()}"
