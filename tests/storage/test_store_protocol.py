"""The store seam (storage/store/protocol.py): the local store implements ``IndexStore``
member for member; ``open_store`` opens a folder as the local store, a registered scheme with
its backend and refuses an unknown one in one line; a second backend is one class and one
registry line, and the read side works through it; nothing in the product but the
registry constructs a store class itself."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from ace_index.storage.store import IndexStore, Store, StoreError, open_store
from ace_index.storage.store import protocol as store_protocol

ROOT = Path(__file__).resolve().parents[2]


def _members(cls) -> list[str]:
    return [n for n in dir(cls) if not n.startswith("_")]


def test_the_local_store_implements_every_member_with_the_same_parameters():
    for name in _members(IndexStore):
        ours = getattr(Store, name)
        wanted = getattr(IndexStore, name)
        if isinstance(wanted, property):
            assert isinstance(ours, property), name
            continue
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(wanted).parameters
        ), name
    assert "root" in IndexStore.__annotations__ and isinstance(Store("x"), IndexStore)


def test_open_store_opens_folders_passes_stores_and_refuses_unknown_schemes(tmp_path):
    opened = open_store(tmp_path / "s")
    assert type(opened) is Store and opened.root == tmp_path / "s"
    assert open_store(str(tmp_path / "s")).root == tmp_path / "s"
    assert open_store(opened) is opened
    with pytest.raises(StoreError, match=r"no store backend for s3:// \(registered: none\)"):
        open_store("s3://bucket/store")


class MirrorStore(Store):
    """A second backend: ``mirror://NAME`` is the folder NAME under a mount point."""

    MOUNT = Path("/nonexistent")

    def __init__(self, location: str):
        super().__init__(self.MOUNT / location.removeprefix("mirror://"))


def test_a_second_backend_is_one_class_and_one_registry_line(store, monkeypatch):
    from ace_index.query.search import Searcher

    monkeypatch.setattr(MirrorStore, "MOUNT", store.parent)
    monkeypatch.setitem(store_protocol.BACKENDS, "mirror", f"{__name__}:MirrorStore")
    mirrored = open_store(f"mirror://{store.name}")
    assert type(mirrored) is MirrorStore and mirrored.latest() == Store(store).latest()
    texts = ["a photo", "a sound"]  # the search runs end to end through the backend
    mirrored_hits = Searcher(f"mirror://{store.name}").search(texts, k=3).results
    direct_hits = Searcher(str(store)).search(texts, k=3).results
    assert mirrored_hits and [[h["item_id"] for h in q] for q in mirrored_hits] == [
        [h["item_id"] for h in q] for q in direct_hits
    ]


def _constructs_a_store(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "Store":
                return True
    return False


def test_nothing_outside_the_store_package_constructs_a_store_class():
    layers = ("storage", "query", "tasks", "flows")
    product = [p for pkg in layers for p in (ROOT / pkg).rglob("*.py")]
    own = {"storage/store/store.py", "storage/store/protocol.py"}  # the class, the registry
    outside = [p for p in product if p.relative_to(ROOT).as_posix() not in own]
    found = sorted(str(p.relative_to(ROOT)) for p in outside if _constructs_a_store(p))
    assert found == []
    assert _constructs_a_store(Path(__file__))  # the check sees a construction
