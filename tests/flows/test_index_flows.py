"""index -> ingest -> audit through the CLI and Prefect flows (session-scoped harness)."""

import json
import shutil
import threading

import pyarrow.parquet as pq
import pytest
from conftest import fast_config, tiny_encoder_args

from ace_index.flows.cli import main
from ace_index.storage.store import Store, StoreError

FAST = fast_config(6, 3, 20, 5, ingest_epochs=3, shard_size=None)
TINY = tiny_encoder_args(16)


def run(capsys, *argv) -> dict:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fast.json"
    path.write_text(json.dumps(FAST))
    return str(path)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, sample_corpus):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    out = tmp_path_factory.mktemp("batch")
    write_sample_corpus(out, seed=12, counts=CorpusCounts(images=3, audio=1, videos=1))
    (out / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    shutil.copy(sample_corpus / "images" / "img_0000.png", out / "images" / "already_indexed.png")
    return out


@pytest.fixture(scope="module")
def indexed(prefect_harness, tmp_path_factory, sample_corpus, batch, config_file):
    """v1 = index(sample corpus), v2 = ingest(batch); returns (store, reports)."""
    capsys = _Capture()
    store = tmp_path_factory.mktemp("store") / "s"
    v1 = capsys.run(
        "index", str(sample_corpus), "--store", str(store), "--config", config_file, *TINY
    )
    v2 = capsys.run("ingest", str(batch), "--store", str(store))
    return store, v1, v2


class _Capture:
    """Module-scoped runs cannot use the function-scoped capsys fixture."""

    def run(self, *argv) -> dict:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--json"])
        assert code == 0, err.getvalue()[-2000:]
        return json.loads(out.getvalue())


def test_index_publishes_a_full_rebuild(indexed):
    store, v1, _ = indexed
    assert v1["version"] == "v000001" and v1["operation"] == "full_rebuild"
    assert v1["parent_version"] is None and v1["items"]["ok"] == 22
    assert set(v1["eval"]["generative"]) == {"R@1", "R@5", "R@10", "MRR@10"}
    for key in (
        "n_items",
        "k",
        "levels",
        "codebook_size",
        "collision_rate",
        "max_suffix",
        "utilization",
        "perplexity",
        "rel_recon_error",
        "faiss_rq_rel_recon_error",
        "faiss_rq_collision_rate",
        "faiss_rq_perplexity",
    ):
        assert key in v1["ids"]
    from ace_index.flows.cli.present import publish_report

    summary = publish_report(v1)
    ids = v1["ids"]
    assert summary.startswith("published v000001 (full_rebuild, parent -)")
    assert (
        f"collision rate {ids['collision_rate']} (faiss RQ {ids['faiss_rq_collision_rate']})"
        in (summary)
    )


def test_ingest_adds_new_items_with_existing_ids_frozen(indexed):
    store, v1, v2 = indexed
    assert v2["operation"] == "incremental_append" and v2["parent_version"] == "v000001"
    assert v2["id_diff"] == {"added": 5, "removed": 0, "changed": 0, "unchanged": 22}
    items = pq.read_table(Store(store).version("v000002").items).to_pylist()
    failed = [r for r in items if r["status"] == "failed"]
    assert [r["path"] for r in failed] == ["images/corrupt.png"] and failed[0]["error"]
    # the batch is its own source: the same relative path in two folders stays two files
    assert failed[0]["source_id"].startswith("batch")
    assert len({(r["source_id"], r["path"]) for r in items}) == len(items)
    sources = {s["source_id"] for s in Store(store).manifest("v000002")["sources"]}
    assert {r["source_id"] for r in items} == sources and len(sources) == 2
    assert v2["items"]["ok"] == 27 and v2["items"]["failed"] == 1
    assert [(f["path"], bool(f["error"])) for f in v2["failed_items"]] == [
        ("images/corrupt.png", True)
    ]
    from ace_index.flows.cli.present import publish_report

    assert f"failed: {v2['failed_items'][0]['location']}: " in publish_report(v2)
    assert "old_items" in v2["eval"]["subsets"] and "new_items" in v2["eval"]["subsets"]


def test_audit_versions_and_manifest(indexed, capsys):
    from ace_core.media.discovery import sha256_file

    store, _, _ = indexed
    audit = run(capsys, "audit", "--store", str(store))
    assert (audit["from"], audit["to"]) == ("v000001", "v000002")
    assert (audit["added"], audit["removed"], audit["changed"], audit["unchanged"]) == (5, 0, 0, 22)
    items = {r["item_id"]: r for r in pq.read_table(Store(store).version().items).to_pylist()}
    for added in audit["added_items"]:  # each named by its file, not only its hash
        row = items[added["item_id"]]
        assert added["file"] == f"{row['source_id']}:{row['path']}"
    versions = run(capsys, "versions", "--store", str(store))
    assert [v["version"] for v in versions] == ["v000001", "v000002"]
    assert [v["parent_version"] for v in versions] == [None, "v000001"]
    m = Store(store).manifest()
    for key in (
        "version",
        "parent_version",
        "operation",
        "created_at",
        "code_version",
        "flow_run_id",
        "input_set_hash",
        "encoders",
        "config",
        "config_hash",
        "files",
        "counts",
        "id_diff",
        "eval",
    ):
        assert key in m, key
    assert m["encoders"]["image"]["weights_source"] == "random-init"
    folder = Store(store).version_dir("v000002")
    for f in m["files"]:
        assert sha256_file(folder / f["path"]) == f["sha256"]
    assert Store(store).latest() == "v000002"


def test_query_returns_items_of_the_version(indexed, capsys):
    from ace_core.media.discovery import sha256_file

    store, _, _ = indexed
    out = run(capsys, "query", "a red circle", "--store", str(store), "-k", "3")
    assert out["version"] == "v000002" and len(out["results"]) == 3
    assert set(out["results"][0]) >= {"item_id", "path", "modality", "sid", "score"}
    for r in out["results"]:  # every result is traceable to its file
        assert sha256_file(r["location"]) == r["item_id"] and r["location"].endswith(r["path"])
    sids = {r["sid"] for r in out["results"]}
    table = pq.read_table(Store(store).version_dir("v000002") / "semantic_ids.parquet")
    assert sids <= set(table.column("sid").to_pylist())
    assert main(["query", "", "--store", str(store)]) == 2
    assert main(["query", "x", "-k", "0", "--store", str(store)]) == 2


def test_reindex_keeps_ingested_items_and_ids_and_an_unchanged_one_publishes_nothing(
    indexed, sample_corpus, config_file, capsys
):
    store, _, v2 = indexed
    v3 = run(
        capsys, "index", str(sample_corpus), "--store", str(store), "--config", config_file, *TINY
    )
    # the ingested batch is a source too: nothing is removed; only the failed file is retried
    assert v3["removed_items"] == [] and v3["id_diff"]["removed"] == 0
    assert v3["items"]["ok"] == v2["items"]["ok"] == 27 and v3["shards_computed"] <= 1
    assert v3["id_diff"]["changed"] == 0  # a nightly re-index after an ingest moves no ID
    assert v3["ids"]["id_policy"]["kept_from"] == v2["version"]
    audit = run(capsys, "audit", "--store", str(store))
    assert audit["changed"] == 0 and f"kept from {v2['version']}" in audit["why"]
    # no options: the store's recorded configuration (its tiny encoders, its fast settings)
    v4 = run(capsys, "index", "--store", str(store))
    assert v4["shards_computed"] == 0 and v4["published"] is False
    assert v4["version"] == v3["version"] == Store(store).latest()
    from ace_index.flows.cli.present import publish_report

    assert "nothing" in publish_report(v4).lower() or "unchanged" in publish_report(v4).lower()


def test_refit_is_explicit_and_recorded(indexed, tmp_path, config_file, capsys):
    store = tmp_path / "store"
    shutil.copytree(indexed[0], store)
    r = run(capsys, "index", "--store", str(store), "--refit")
    assert r["published"] and r["ids"]["id_policy"] == {"refit": "--refit was given"}
    audit = run(capsys, "audit", "--store", str(store))
    assert "--refit was given" in audit["why"]


def test_build_outputs_are_reused_only_for_identical_inputs(indexed):
    from dataclasses import replace

    from ace_index.storage.build.staging import reuse_published, stage_copy
    from ace_index.storage.formats.manifest import version_config

    store, _, _ = indexed
    cfg = version_config(str(store), "v000001")
    staged = stage_copy(str(store), "v000001")
    for p in (staged.semantic_ids, staged.codebooks):  # what a fresh stage lacks
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    changed = replace(cfg, train=replace(cfg.train, epochs=cfg.train.epochs + 1))
    assert reuse_published(str(store), staged, changed) is None
    assert not staged.retriever.exists()
    assert reuse_published(str(store), staged, cfg) is not None
    assert staged.reused_from.read_text() == "v000001"
    assert staged.retriever_weights.exists()


def _staged_retrain(store):
    """A staged copy of v000001 ready to publish (as a retrain would leave it)."""
    from ace_index.storage.build.staging import stage_copy

    v1 = Store(store).version("v000001")
    staged = stage_copy(str(store), "v000001")
    shutil.copytree(v1.retriever, staged.retriever)
    shutil.copy(v1.eval, staged.eval)
    return staged


def _publish_retrain(store, staged, **kw) -> dict:
    from ace_index.storage.build.publish import publish_version
    from ace_index.storage.formats.manifest import version_config

    return publish_version(
        str(store),
        staged,
        operation="retrain",
        expected_parent=None,
        config=version_config(str(store), "v000001"),
        ids_report={},
        **kw,
    )


def test_concurrent_publish_is_refused_while_the_lock_is_held(indexed):
    store, _, _ = indexed
    s = Store(store)
    staged = _staged_retrain(store)
    before = s.latest()
    held, release = threading.Event(), threading.Event()

    def holder():
        with s.lock():
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(StoreError, match="another process is publishing"):
            _publish_retrain(store, staged, lock_timeout_s=0.5)
        assert s.latest() == before
    finally:
        release.set()
        t.join()
    m = _publish_retrain(store, staged)
    assert s.latest() == m["version"] != before


def test_publish_killed_before_latest_leaves_previous_version_served(indexed, monkeypatch):
    store, _, _ = indexed
    s = Store(store)
    before, versions = s.latest(), s.versions()
    staged = _staged_retrain(store)

    def killed(*a, **k):
        raise SystemExit("killed")

    monkeypatch.setattr(Store, "_write_latest", killed)
    with pytest.raises(SystemExit):
        _publish_retrain(store, staged)
    assert s.latest() == before
    for v in versions:
        assert s.manifest(v)["version"] == v


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_kill_9_during_index_leaves_store_intact_and_rerun_reuses_shards(
    indexed, tmp_path, sample_corpus, config_file, capsys
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from ace_index.storage.build.publish import validate_version

    store = tmp_path / "store"
    shutil.copytree(indexed[0], store)
    shutil.rmtree(store / "staging" / "versions", ignore_errors=True)  # other tests' leftovers
    s = Store(store)
    before, versions = s.latest(), s.versions()
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    shutil.copy(corpus / "images" / "img_0001.png", corpus / "images" / "copy.png")
    from ace_core.synth import CorpusCounts, write_sample_corpus

    extra = tmp_path / "extra"  # a new item: the killed run must embed a new shard first
    write_sample_corpus(extra, seed=77, counts=CorpusCounts(images=1, audio=0, videos=0))
    shutil.copy(extra / "images" / "img_0000.png", corpus / "images" / "new.png")
    from prefect.settings import get_current_settings

    # the child reports to this session's harness API instead of starting a second ephemeral
    # server next to it; a crash prints its Python stacks (faulthandler) into the log below
    env = {
        **os.environ,
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PYTHONFAULTHANDLER": "1",
    }
    log = tmp_path / "killed-run.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ace_index.flows.cli",
            "index",
            str(corpus),
            "--store",
            str(store),
            "--config",
            config_file,
            *TINY,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 240
    try:  # kill once the run is past the IDs, in the middle of training
        while not list((store / "staging" / "versions").glob("*/semantic_ids.parquet")):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"the run ended ({proc.returncode}) before it could be killed:\n{tail}")
            assert time.monotonic() < deadline, "the run never reached training"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert s.latest() == before and s.versions() == versions
    for v in versions:
        validate_version(s.version(v))
    again = run(capsys, "index", str(corpus), "--store", str(store), "--config", config_file, *TINY)
    assert again["shards_computed"] == 0 and s.latest() == again["version"]
    # the store's sources (27 ok items) + new.png; copy.png has the bytes of an indexed item
    assert again["items"]["ok"] == 28 and again["removed_items"] == []


def test_train_flow_retrains_a_version_with_the_same_ids(indexed):
    from ace_index.flows.index import train_retriever

    store, _, _ = indexed
    parts = sorted((store / "staging" / "text-features").glob("*/part-*.json"))
    assert parts  # the build kept its caption features
    # a person's retrain of a named version (a run no person started, raised for v1, finds
    # it covered by the later full rebuild and does nothing: test_one_version_per_change.py)
    out = train_retriever(str(store), "v000001", explicit=True)
    assert out["operation"] == "retrain" and out["items"]["ok"] == 22
    assert sorted((store / "staging" / "text-features").glob("*/part-*.json")) == parts  # reused
    s = Store(store)
    new = pq.read_table(s.version_dir(out["version"]) / "semantic_ids.parquet")
    old = pq.read_table(s.version_dir("v000001") / "semantic_ids.parquet")
    assert new.column("sid").to_pylist() == old.column("sid").to_pylist()
    assert s.latest() == out["version"]
