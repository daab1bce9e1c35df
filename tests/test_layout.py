"""ace_core is the pure ML core: it imports nothing from flows, tasks, storage or prefect."""

import ast
from pathlib import Path

FORBIDDEN = {"prefect", "flows", "tasks", "storage"}
ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ace_core_imports_no_orchestration_or_storage():
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN)
        for p in (ROOT / "ace_core").rglob("*.py")
        if _imports(p) & FORBIDDEN
    }
    assert offenders == {}


def test_storage_never_imports_prefect():
    offenders = [str(p) for p in (ROOT / "storage").rglob("*.py") if "prefect" in _imports(p)]
    assert offenders == []


def test_no_pickle_loading_in_project_code():
    for pkg in ("ace_core", "storage", "tasks", "flows"):
        for p in (ROOT / pkg).rglob("*.py"):
            for line in p.read_text().splitlines():
                if "torch.load" + "(" in line:  # spelled apart so this line is not a hit
                    assert "weights_only=True" in line, f"{p}: {line.strip()}"
