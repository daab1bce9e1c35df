"""The fault matrix (issue: faults and hostile input): every case ends in a correct result or
a one-line reason naming the input at fault (exit 2), or the store at fault (exit 3), and
never in a half-visible or orphan version, a hang, unbounded memory, code execution, a read
outside the store or corpus, or a silent wrong answer.

`bench/faults.py` runs this module and the slow cases and prints how many held."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fault_helpers import FAST, ace, one_line_error

from ace_core.media.discovery import discover, sha256_file
from ace_index.flows.cli import EXIT_DAMAGED
from ace_index.storage.store import Store


def _flip(path: Path, n: int = 64, seed: int = 0) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(data), min(n, len(data)), replace=False):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- damaged store


@pytest.mark.parametrize("target", ["embeddings", "retriever", "semantic_ids", "items"])
def test_flipped_bytes_in_a_published_file_are_never_served(store, capsys, target):
    v = Store(store).version()
    path = {
        "embeddings": v.embedding_parts()[0],
        "retriever": v.retriever_weights,
        "semantic_ids": v.semantic_ids,
        "items": v.items,
    }[target]
    _flip(path)
    code, out, err = ace(capsys, "query", "a red circle", "--store", str(store), "-k", "2")
    assert code == EXIT_DAMAGED and out == ""
    one_line_error(err, "damaged store", path.name)
    code, _, err = ace(capsys, "verify", "--store", str(store))
    assert code == EXIT_DAMAGED and path.name in err


def test_a_damaged_latest_is_not_built_on(store, built, capsys):
    before = Store(store).versions()
    _flip(Store(store).version().embedding_parts()[0])
    code, _, err = ace(capsys, "ingest", str(built / "corpus"), "--store", str(store))
    assert code == EXIT_DAMAGED and Store(store).versions() == before
    one_line_error(err, "damaged store")


def test_an_extra_file_in_a_version_is_reported(store, capsys):
    v = Store(store).version()
    shutil.copy(v.embedding_parts()[0], v.embeddings_dir / "part-09999.parquet")
    code, _, err = ace(capsys, "verify", "--store", str(store))
    assert code == EXIT_DAMAGED and "not in the manifest" in err


def test_verify_passes_on_an_intact_store(store, capsys):
    code, out, _ = ace(capsys, "verify", "--store", str(store), "--all", "--json")
    assert code == 0 and all(r["ok"] for r in json.loads(out))


@pytest.mark.parametrize(
    "latest",
    [b"../../elsewhere/v000001\n", b"\xff\xfe garbage \x00", b"v000009\n", "dir", "fifo", "zero"],
)
def test_a_bad_latest_is_a_damaged_store_not_a_read_elsewhere(store, capsys, latest):
    (store / "LATEST").unlink()
    if latest == "dir":
        (store / "LATEST").mkdir()
    elif latest == "fifo":
        os.mkfifo(store / "LATEST")  # would block a plain read forever
    elif latest == "zero":
        (store / "LATEST").symlink_to("/dev/zero")  # would never end
    else:
        (store / "LATEST").write_bytes(latest)
    code, out, err = ace(capsys, "query", "a red circle", "--store", str(store))
    assert code == EXIT_DAMAGED and out == ""
    one_line_error(err, "damaged store", "LATEST")


def test_version_names_from_the_user_never_leave_the_store(store, capsys):
    code, _, err = ace(capsys, "query", "x", "--store", str(store), "--version", "../../x")
    assert code == 2 and "a version is a number" in one_line_error(err)


def test_published_parts_share_no_bytes_with_the_mutable_cache(store):
    cache = {p.stat().st_ino for p in (store / "staging" / "embed").rglob("*.parquet")}
    for v in Store(store).versions():
        for part in Store(store).version(v).embedding_parts():
            assert part.stat().st_ino not in cache


# ----------------------------------------------------------------------------- publish window


def test_a_publish_killed_before_latest_moved_is_never_served_nor_reused(store, built, capsys):
    s = Store(store)
    v1 = s.latest()
    shutil.copytree(s.version_dir(v1), s.versions_dir / "v000002")  # renamed, LATEST not moved
    assert s.versions() == [v1] and s.orphans() == ["v000002"]
    code, out, _ = ace(capsys, "versions", "--store", str(store), "--json")
    assert [r["version"] for r in json.loads(out)] == [v1]
    stale = s.staging_dir / "versions" / "dead-run"
    stale.mkdir(parents=True)
    (stale / ".owner").write_text(f"{os.uname().nodename} 999999999\n")
    extra = built / "extra"
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(extra, seed=9, counts=CorpusCounts(images=1, audio=0, videos=0))
    code, out, err = ace(capsys, "ingest", str(extra), "--store", str(store), "--json")
    assert code == 0, err[-2000:]
    r = json.loads(out)
    assert (r["version"], r["parent_version"]) == ("v000003", v1)  # no number used twice
    assert s.versions() == [v1, "v000003"] and not stale.exists()
    assert (s.versions_dir / "v000002").is_dir()  # only `ace prune` deletes a version folder
    assert not list((s.staging_dir / "versions").iterdir())  # nothing left behind
    code, out, _ = ace(capsys, "prune", "--keep", "5", "--store", str(store), "--json")
    assert code == 0 and json.loads(out)["deleted"] == ["v000002"] and s.orphans() == []


def test_a_second_build_fails_at_once_before_any_work(store, built, capsys):
    s = Store(store)
    before = s.versions()
    with _build_lock_held_elsewhere(store, "ace index (test)"):
        t = time.perf_counter()
        code, _, err = ace(capsys, "ingest", str(built / "corpus"), "--store", str(store))
        took = time.perf_counter() - t
    assert code == 2 and s.versions() == before and took < 5  # the lock comes first
    one_line_error(err, "busy", "ace index (test)")


@contextlib.contextmanager
def _build_lock_held_elsewhere(store: Path, what: str):
    """Another process holding the store's build lock, as a running build does."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.pwrite(fd, sys.argv[2].encode(), 0)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    args = [sys.executable, "-c", code, str(store / ".build.lock"), what]
    holder = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_an_ingest_with_nothing_new_publishes_nothing(store, built, capsys):
    before = Store(store).versions()
    code, out, err = ace(capsys, "ingest", str(built / "corpus"), "--store", str(store), "--json")
    assert code == 0, err[-2000:]
    r = json.loads(out)
    assert r["published"] is False and r["version"] == before[-1]
    assert Store(store).versions() == before


@pytest.mark.parametrize("err_no", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_is_one_line_and_leaves_no_staging(
    store, built, capsys, monkeypatch, err_no
):
    from ace_index.storage.build import staging

    real = staging._stage_tables

    def failing(staged, *a, **k):
        real(staged, *a, **k)
        raise OSError(err_no, os.strerror(err_no), str(staged.root / "captions.parquet"))

    monkeypatch.setattr(staging, "_stage_tables", failing)
    before = Store(store).versions()
    code, _, err = ace(capsys, "index", "--store", str(store), "--config",
                       str(built / "fast.json"))  # fmt: skip
    assert code == 2 and Store(store).versions() == before
    one_line_error(err, os.strerror(err_no))
    assert not list((store / "staging" / "versions").iterdir())


def test_a_failed_copy_is_reported_in_one_line():
    from ace_index.flows.cli.main import one_line

    e = shutil.Error([("/s/a" * 40, "/d/a" * 40, "[Errno 28] No space left on device")] * 20)
    assert one_line(e).startswith("cannot copy /s/a") and "\n" not in one_line(e)


# ----------------------------------------------------------------------------- corpus input


def _corpus(tmp_path, captions: bytes | None = None) -> Path:
    from ace_core.synth import CorpusCounts, write_sample_corpus

    root = tmp_path / "c"
    write_sample_corpus(root, seed=3, counts=CorpusCounts(images=2, audio=0, videos=0))
    if captions is not None:
        (root / "captions.jsonl").write_bytes(captions)
    return root


def test_bad_caption_lines_are_reported_and_the_rest_is_read(tmp_path):
    deep = b'{"path": "images/img_0000.png", "captions": ' + b"[" * 100_000 + b"]" * 100_000
    lines = [
        deep + b"}",
        b'{"path": "images/img_0000.png", "captions": ["\\ud800 lone surrogate"]}',
        b'{"path": "images/img_0001.png", "captions": ["a good caption"]}',
        b"x" * (2 << 20),
    ]
    found = discover(_corpus(tmp_path, b"\n".join(lines) + b"\n"))
    assert [e.split(": ", 1)[0] for e in found.caption_errors] == [
        "captions.jsonl:1", "captions.jsonl:2", "captions.jsonl:4"
    ]  # fmt: skip
    assert "nested too deeply" in found.caption_errors[0]
    assert "not valid Unicode" in found.caption_errors[1]
    assert [e.captions for e in found.captions.values()] == [["a good caption"]]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_captions_file_that_never_ends_is_not_read(tmp_path, kind):
    root = _corpus(tmp_path)
    (root / "captions.jsonl").unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(root / "captions.jsonl")
    else:
        (root / "captions.jsonl").symlink_to("/dev/zero")
    signal.alarm(20)  # a hang fails the test instead of the run
    try:
        found = discover(root)
    finally:
        signal.alarm(0)
    assert len(found.files) == 2 and "not a regular file" in found.caption_errors[0]


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path):
    root = _corpus(tmp_path)
    shutil.copy(root / "images" / "img_0000.png", root / "images" / "x.png")
    os.rename(root / "images" / "x.png", os.fsencode(root / "images") + b"/bad-\xff.png")
    found = discover(root)
    assert len(found.files) == 2
    assert [(p, why) for p, why in found.skipped if "UTF-8" in why] == [
        ("images/bad-\\xff.png", "file name is not valid UTF-8 (rename it)")
    ]


def test_symlinks_never_lead_outside_the_corpus(tmp_path):
    root = _corpus(tmp_path)
    outside = tmp_path / "secret.png"
    shutil.copy(root / "images" / "img_0000.png", outside)
    _flip(outside, 8)  # other bytes than the indexed image
    (root / "leak.png").symlink_to(outside)
    (root / "inside.png").symlink_to(root / "images" / "img_0001.png")
    found = discover(root)
    assert ("leak.png", "symbolic link to a file outside the corpus (not followed)") in (
        found.skipped
    )
    assert all(str(tmp_path / "c") in f.abs_path for f in found.files)
    assert sha256_file(outside) not in {f.item_id for f in found.files}


def test_missing_weight_files_are_refused_before_any_work(tmp_path, capsys):
    root = _corpus(tmp_path)
    for opt in ("--image-weights", "--audio-checkpoint"):
        code, _, err = ace(capsys, "index", str(root), "--store", str(tmp_path / "s"), opt,
                           str(tmp_path / "nope.pt"))  # fmt: skip
        assert code == 2 and "file not found" in one_line_error(err)
        assert not (tmp_path / "s" / "versions").exists()


# ----------------------------------------------------------------------------- training


def test_a_corpus_without_any_captions_indexes_and_answers(prefect_harness, tmp_path, capsys):
    root = _corpus(tmp_path)
    (root / "captions.jsonl").unlink()
    cfg = tmp_path / "fast.json"
    cfg.write_text(json.dumps(FAST))
    code, out, err = ace(capsys, "index", str(root), "--store", str(tmp_path / "s"),
                         "--config", str(cfg), "--json")  # fmt: skip
    assert code == 0, err[-2000:]
    assert json.loads(out)["eval"]["queries"]["train"] == 0
    code, out, err = ace(capsys, "query", "a red circle", "--store", str(tmp_path / "s"),
                         "-k", "2", "--json")  # fmt: skip
    assert code == 0 and len(json.loads(out)["results"]) == 2


def test_stored_caption_features_train_with_backward(tmp_path):
    """Caption features read from the feature store's memory-mapped files (any real build)
    must be usable in a backward pass."""
    import torch

    from ace_core.retrieval.model import RetrieverConfig
    from ace_core.retrieval.text_encoder import build_text_encoder
    from ace_core.retrieval.text_features import FeatureSpec
    from ace_index.storage.formats.text_features import TextFeatureStore

    enc, tok, _ = build_text_encoder(RetrieverConfig(text_precision="float32"))
    store = TextFeatureStore(tmp_path, enc, tok, FeatureSpec(pooled_memory=False))
    feats = store.features(["a red circle", "two blue squares"])
    layers, _ = feats.layers(torch.tensor([0, 1]))
    head = torch.nn.Linear(layers.shape[-1], 1)
    head(layers).sum().backward()  # "Inference tensors cannot be saved for backward" before
    assert head.weight.grad is not None


def test_one_caption_per_item_trains_without_held_out_queries():
    from ace_core.ids.kmeans import KMeansConfig
    from ace_core.ids.rqvae import RQVAEConfig
    from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
    from ace_core.media.captions import CaptionEntry
    from ace_core.retrieval.dense import DenseTrainConfig
    from ace_core.retrieval.fit import fit_retrieval
    from ace_core.retrieval.model import RetrieverConfig
    from ace_core.retrieval.training import TrainConfig

    ids = [f"{i:064x}" for i in range(12)]
    x = l2n(np.random.default_rng(0).standard_normal((12, 16)).astype(np.float32))
    caps = {i: CaptionEntry([f"item number {n}"]) for n, i in enumerate(ids)}
    cfg = SemanticIDConfig(kmeans=KMeansConfig(k=2), rqvae=RQVAEConfig(levels=2, max_epochs=2))
    indexer, sids = fit_semantic_ids(ids, x, cfg)
    fit = fit_retrieval(
        ids, x, sids, indexer, caps, config=RetrieverConfig(d_model=32, n_layers=1),
        train=TrainConfig(epochs=2, dense=DenseTrainConfig(epochs=2)),
    )  # fmt: skip
    assert fit.eval["queries"] == {"train": 12, "val": 0, "test": 0}
    from ace_core.retrieval.generation import generative_search

    m = fit.model
    assert len(generative_search(m.decoder, m.features(["item number 3"]), m.trie, 10, 3)[0]) == 3
