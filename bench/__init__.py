"""The benchmark scripts (not tests; not shipped: pyproject's package list leaves bench out).

Each bench is a module here with a ``main()`` that reads ``sys.argv``: run one as
``python -m bench NAME [ARGS...]`` or ``python bench/NAME.py [ARGS...]``; ``python -m bench``
lists them. Each also declares ``SMOKE``, the argv of its smallest run, which
tests/bench/test_smoke.py runs; there ``{tmp}`` stands for a fresh folder, ``{corpus}`` for a
small captioned scenes-world corpus with its embeddings kept (as ``fused_protocols.py
--corpus`` keeps them) and ``{store}`` for a small store with an index and an ingest on top
of it. Helpers, not benches: timing.py (the one timer), curve_hook.py and
``spread_captions`` below.
"""

import ast
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def module_tree(name: str) -> ast.Module:
    """bench/NAME.py parsed (nothing of it run)."""
    return ast.parse((FOLDER / f"{name}.py").read_text())


def defines_main(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


def bench_names() -> list[str]:
    """The modules here with a top-level ``main()``, sorted."""
    stems = sorted(p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_"))
    return [s for s in stems if defines_main(module_tree(s))]


def summary(name: str) -> str:
    """The first line of bench/NAME.py's docstring."""
    return (ast.get_docstring(module_tree(name)) or "").strip().split("\n")[0]


def spread_captions(corpus, n: int) -> list[str]:
    """``n`` of a corpus folder's captions, spread evenly over its captions.jsonl."""
    from ace_core.media.discovery import discover

    captions = [c for e in discover(corpus).captions.values() for c in e.captions]
    return captions[:: max(1, len(captions) // n)][:n]
