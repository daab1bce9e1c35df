import numpy as np
import pytest

from ace_core.ids.sids import SemanticIDs
from ace_core.media.discovery import MediaFile
from ace_index.storage.build.audit import id_diff
from ace_index.storage.formats.shards import load_shard_files, plan_shards, with_current_paths
from ace_index.storage.formats.tables import items_table
from ace_index.storage.store import Store, StoreError, VersionNameError


def _files(paths):
    return [MediaFile(p, f"/c/{p}", f"{i:064x}", "image", 1) for i, p in enumerate(paths)]


def test_shard_keys_depend_on_content_and_specs_follow_moved_files(tmp_path):
    a = plan_shards(_files(["a.png", "b.png", "c.png"]), 2, "cfg", tmp_path)
    moved = plan_shards(_files(["x/a.png", "b.png", "c.png"]), 2, "cfg", tmp_path)
    assert [s.key for s in a] == [s.key for s in moved]  # same bytes, same shards
    assert load_shard_files(moved[0])[0].path == "x/a.png"  # the spec has the new path
    other = plan_shards(_files(["a.png", "b.png", "c.png"]), 2, "other-cfg", tmp_path)
    assert {s.key for s in other}.isdisjoint({s.key for s in a})


def test_items_rows_take_the_current_source_and_path():
    rows = [
        {"item_id": "1", "path": "old.png", "modality": "image", "status": "ok"},
        {"item_id": "2", "source_id": "a", "path": "gone.png", "modality": "image"},
    ]
    now = [MediaFile("new.png", "/c/new.png", "1", "image", 1, source_id="b")]
    out = with_current_paths(items_table(rows), now)
    assert out["path"].to_pylist() == ["new.png", "gone.png"]
    assert out["source_id"].to_pylist() == ["b", "a"]


def test_items_tables_without_source_ids_are_read_in_the_current_schema(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ace_index.storage.formats.tables import ITEMS_SCHEMA, read_items_table

    old = pa.table({"item_id": ["1"], "path": ["a.png"], "modality": ["image"], "status": ["ok"]})
    pq.write_table(old, tmp_path / "items.parquet")
    t = read_items_table(tmp_path / "items.parquet")
    assert t.schema == ITEMS_SCHEMA and t["source_id"].to_pylist() == [None]


def test_id_diff_counts():
    def ids(pairs):
        return SemanticIDs(
            [p[0] for p in pairs],
            np.array([p[1] for p in pairs]),
            np.zeros((len(pairs), 1), np.int64),
            np.zeros(len(pairs), np.int64),
        )

    d = id_diff(
        ids([("a", 1), ("b", 2), ("c", 3)]), ids([("a", 1), ("b", 5), ("d", 4)]), detail=True
    )
    assert (d["added"], d["removed"], d["changed"], d["unchanged"]) == (1, 1, 1, 1)
    assert d["changed_items"] == [{"item_id": "b", "from": "2.0.0", "to": "5.0.0"}]


def test_store_resolve_and_latest(tmp_path):
    s = Store(tmp_path)
    with pytest.raises(StoreError, match="no published version"):
        s.resolve(None)
    staged = s.new_staging_version()
    staged.manifest.write_text("{}")
    with s.lock():
        s.publish(staged, s.next_version())
    assert s.latest() == "v000001" and s.resolve("1") == "v000001"
    with pytest.raises(StoreError, match="unknown version"):
        s.resolve("v000009")
    for typed in ("²", "١", "v٠٠٠٠٠١", "v000001\n", "../v000001", "-1"):
        with pytest.raises(VersionNameError, match="a version is a number"):
            s.resolve(typed)  # Unicode digits are not version numbers (int("١") == 1)
    staged2 = s.new_staging_version()
    staged2.manifest.write_text("{}")
    with pytest.raises(StoreError, match="already exists"):
        s.publish(staged2, "v000001")
    assert s.latest() == "v000001"


def test_served_versions_count_latest_and_every_move_from_and_to():
    """LATEST is served even before its publish entry (a publish killed after LATEST moved);
    versions published before the store kept a history stay served after a rollback; only a
    folder LATEST never named is an orphan."""
    from ace_index.storage.store.history import served_versions
    from ace_index.storage.store.store import version_number

    folders = ["v000001", "v000002", "v000003"]

    def served(entries, latest):
        return served_versions(entries, latest, folders, version_number)

    def move(op, latest, previous):
        return {"operation": op, "latest": latest, "previous": previous}

    published = [move("publish", "v000001", None), move("publish", "v000002", "v000001")]
    assert served(published, "v000002") == set(folders[:2])  # v000003: an orphan
    assert served(published, "v000003") == set(folders)  # killed before its entry
    older = [move("publish", "v000003", "v000002"), move("rollback", "v000001", "v000003")]
    assert served(older, "v000001") == set(folders)  # v1, v2 came before the history
    assert served([move("rollback", "v000002", "v000003")], "v000002") == set(folders)
    assert served([], "v000002") == set(folders[:2])
