"""Sources: items traceable to their files across folders, nightly re-index of all sources,
removals refused without --allow-remove, and older stores read."""

import json
import shutil

import pytest
from conftest import fast_config

from ace_core.media.discovery import sha256_file
from ace_index.flows.cli import main
from ace_index.storage.formats.tables import read_items_table
from ace_index.storage.store import Store

FAST = fast_config(4, 2, 10, 4, ingest_epochs=2)


def ace(capsys, *argv, code=0) -> dict | str:
    got = main([*argv, "--json"])
    out = capsys.readouterr()
    assert got == code, out.err[-2000:]
    return json.loads(out.out) if code == 0 else out.err


@pytest.fixture(scope="module")
def folders(tmp_path_factory, sample_corpus):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    root = tmp_path_factory.mktemp("sources")
    shutil.copytree(sample_corpus, root / "photos")
    batch = root / "uploads"
    write_sample_corpus(batch, seed=21, counts=CorpusCounts(images=2, audio=1, videos=0))
    (root / "fast.json").write_text(json.dumps(FAST))
    return root


def test_index_ingest_and_nightly_reindex_lose_nothing_and_trace_every_item(
    prefect_harness, folders, tmp_path, capsys
):
    store, cfg = str(tmp_path / "store"), str(folders / "fast.json")
    v1 = ace(capsys, "index", str(folders / "photos"), "--store", store, "--config", cfg)
    v2 = ace(capsys, "ingest", str(folders / "uploads"), "--store", store)
    sources = ace(capsys, "sources", "list", "--store", store)
    assert [s["source_id"] for s in sources] == ["photos", "uploads"]
    assert {s["location"] for s in sources} == {str(folders / "photos"), str(folders / "uploads")}
    # the same relative path exists in both folders: two items, each traceable to its file
    items = read_items_table(Store(store).version().items).to_pylist()
    assert len({(r["source_id"], r["path"]) for r in items}) == len(items)
    assert len({r["path"] for r in items}) < len(items)

    nightly = ace(capsys, "index", "--store", store, "--config", cfg)  # every source of LATEST
    assert nightly["id_diff"]["removed"] == 0 and nightly["removed_items"] == []
    assert nightly["items"]["ok"] == v2["items"]["ok"] > v1["items"]["ok"]
    assert nightly["shards_computed"] == 0  # embeddings come from LATEST
    located = {s["source_id"]: s["location"] for s in Store(store).manifest()["sources"]}
    for r in read_items_table(Store(store).version().items).to_pylist():
        assert r["location"] == f"{located[r['source_id']]}/{r['path']}"
        assert sha256_file(r["location"]) == r["item_id"]
    hits = ace(capsys, "query", "a red circle", "--store", store, "-k", "25")["results"]
    assert {r["source_id"] for r in hits} == {"photos", "uploads"}
    for r in hits:
        assert r["location"] == f"{located[r['source_id']]}/{r['path']}"
        assert sha256_file(r["location"]) == r["item_id"]


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_reindex_that_would_drop_items_refuses_without_the_flag(
    prefect_harness, folders, tmp_path, capsys
):
    photos = tmp_path / "photos"
    shutil.copytree(folders / "photos", photos)
    store, cfg = str(tmp_path / "store"), str(folders / "fast.json")
    ace(capsys, "index", str(photos), "--store", store, "--config", cfg)
    s = Store(store)
    before, staged_before = s.latest(), _staged(s)
    (photos / "images" / "img_0003.png").unlink()

    err = ace(capsys, "index", "--store", store, "--config", cfg, code=2)
    assert "would remove 1 indexed item" in err and "photos:images/img_0003.png" in err
    assert "--allow-remove" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("ace: error: re-index would remove")
    assert s.latest() == before and _staged(s) == staged_before  # refused before any work
    assert "1 indexed item" in ace(capsys, "index", "--store", store, "--max-remove", "0",
                                    "--config", cfg, code=2)  # fmt: skip

    allowed = ace(capsys, "index", "--store", store, "--config", cfg, "--max-remove", "1")
    assert [r["path"] for r in allowed["removed_items"]] == ["images/img_0003.png"]
    assert allowed["removed_items"][0]["location"] == str(photos / "images" / "img_0003.png")
    assert allowed["id_diff"]["removed"] == 1 and s.latest() == allowed["version"]


def _staged(s: Store) -> set:
    folder = s.staging_dir / "versions"
    return set(folder.iterdir()) if folder.exists() else set()


def test_sources_add_list_remove_and_folders_under_a_source(tmp_path, folders, capsys):
    store = str(tmp_path / "store")
    added = ace(capsys, "sources", "add", str(folders / "photos"), "--store", store)
    assert added["added"] and added["source_id"] == "photos"
    inner = ace(capsys, "sources", "add", str(folders / "photos" / "images"), "--store", store)
    assert (inner["source_id"], inner["prefix"], inner["added"]) == ("photos", "images", False)
    ace(capsys, "sources", "add", str(folders / "uploads"), "--store", store)
    assert "not found" in ace(capsys, "sources", "add", str(tmp_path / "nope"), "--store", store,
                              code=2)  # fmt: skip
    gone = ace(capsys, "sources", "remove", "uploads", "--store", store)
    assert gone["location"] == str(folders / "uploads")
    assert [s["source_id"] for s in ace(capsys, "sources", "list", "--store", store)] == ["photos"]
    assert "no source 'uploads'" in ace(capsys, "sources", "remove", "uploads", "--store", store,
                                        code=2)  # fmt: skip


def test_ingest_of_a_folder_under_a_source_keeps_that_source(tmp_path, folders):
    from ace_index.storage.store.source_discovery import discover_folder
    from ace_index.storage.store.sources import add_source

    s = Store(tmp_path / "store")
    add_source(s, folders / "photos")
    match = add_source(s, folders / "photos" / "audio")
    found = discover_folder(match, folders / "photos" / "audio")
    assert found.files and {f.source_id for f in found.files} == {"photos"}
    assert all(f.path.startswith("audio/") for f in found.files)
    assert all((folders / "photos" / f.path).is_file() for f in found.files)


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_store_written_before_sources_is_read_and_says_how_to_upgrade(
    prefect_harness, folders, tmp_path, capsys
):
    import pyarrow.parquet as pq

    store, cfg = tmp_path / "store", str(folders / "fast.json")
    ace(capsys, "index", str(folders / "photos"), "--store", str(store), "--config", cfg)
    v = Store(store).version()  # make it look like an older store: no sources anywhere
    (store / "sources.json").unlink()
    m = json.loads(v.manifest.read_text())
    m.pop("sources")
    m["config"]["ingest_epochs"] = m["config"].pop("ingest")["epochs"]  # pre-nesting names
    pq.write_table(pq.read_table(v.items).drop(["source_id", "location"]), v.items)
    from ace_index.storage.build.publish import file_list

    m["files"] = file_list(v)  # a consistent older version: its manifest lists its files
    v.manifest.write_text(json.dumps(m))
    v.manifest_sum.unlink()  # written before manifests had a checksum

    hits = ace(capsys, "query", "a red circle", "--store", str(store), "-k", "2")["results"]
    assert hits[0]["source_id"] is None and hits[0]["location"] is None and hits[0]["path"]
    assert ace(capsys, "versions", "--store", str(store))[0]["sources"] == []
    err = ace(capsys, "index", "--store", str(store), code=2)
    assert "predates sources" in err and "ace sources add" in err

    from ace_index.storage.formats.manifest import version_config

    assert version_config(str(store)).ingest.epochs == FAST["ingest"]["epochs"]


def test_options_are_never_abbreviated(capsys):
    assert main(["index", "x", "--epoch", "3"]) == 2
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ace ")
