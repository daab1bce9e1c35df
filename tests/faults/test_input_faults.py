"""Input faults, round two: the store never indexes itself (any store, `/`, special file
systems); every file the CLI reads is bounded and non-blocking; the configuration is checked
before any work; damaged store files and hostile caption files end in one line; a failed run
registers no source; long audio decodes in bounded memory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import numpy as np
import pytest
from fault_helpers import FAST, ace, one_line_error

from ace_core.media.discovery import discover
from ace_index.flows.cli import EXIT_DAMAGED
from ace_index.storage.store import Store


def _quick(capsys, *argv, limit_s: float = 20.0) -> tuple[int, str]:
    """Run a command that must end quickly (an alarm fails a hang instead of blocking)."""
    signal.alarm(int(limit_s) + 10)
    try:
        t = time.perf_counter()
        code, _, err = ace(capsys, *argv)
        assert time.perf_counter() - t < limit_s
    finally:
        signal.alarm(0)
    return code, err


# ----------------------------------------------------------------------------- the store itself


def test_a_corpus_that_holds_the_store_is_refused_and_registers_nothing(built, tmp_path, capsys):
    corpus = tmp_path / "photos"
    shutil.copytree(built / "corpus", corpus)
    code, err = _quick(capsys, "index", str(corpus), "--store", str(corpus / "ace-store"))
    assert code == 2
    one_line_error(err, "contains the store")
    assert not (corpus / "ace-store" / "sources.json").exists()


@pytest.mark.parametrize("folder", ["store", "/", "/proc"])
def test_the_store_root_and_special_file_systems_are_never_sources(store, capsys, folder):
    before = (store / "sources.json").read_text()
    target = str(store / "versions") if folder == "store" else folder
    code, err = _quick(capsys, "ingest", target, "--store", str(store))
    assert code == 2, err
    one_line_error(err)
    assert (store / "sources.json").read_text() == before


def test_discovery_skips_any_store_inside_a_corpus(built, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(built / "corpus", corpus)
    shutil.copytree(built / "store", corpus / "old-index")
    (corpus / "old-index" / "thumbs").mkdir(exist_ok=True)
    shutil.copy(next(corpus.glob("images/*.png")), corpus / "old-index" / "thumbs" / "t.png")
    found = discover(corpus)
    assert not any(f.path.startswith("old-index/") for f in found.files)
    assert ("old-index/", "an ACE store (its versions and thumbnails are not media to index)") in [
        tuple(s) for s in found.skipped
    ]


# ----------------------------------------------------------------------------- bounded input


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_a_queries_file_that_never_ends_is_refused(store, tmp_path, capsys, kind):
    path = tmp_path / "queries.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        with open(path, "wb") as f:
            f.truncate(300 << 20)  # sparse: larger than the limit, no disk used
    code, err = _quick(capsys, "eval", "--queries", str(path), "--store", str(store))
    assert code == 2
    one_line_error(err, "queries.jsonl")


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "setting, field",
    [
        ({"train": {"epochs": "six"}}, "train.epochs"),
        ({"train": {"epochs": -1}}, "train.epochs"),
        ({"train": {"epochs": 1e12}}, "train.epochs"),
        ({"train": {"epochs": True}}, "train.epochs"),
        ({"train": 5}, "train"),
        ({"train": {"lr": -0.01}}, "train.lr"),
        ({"ids": {"rqvae": {"levels": 0}}}, "ids.rqvae.levels"),
        ({"ids": {"rqvae": {"codebook_size": 10**9}}}, "ids.rqvae.codebook_size"),
        ({"retriever": {"text_precision": "fp16"}}, "retriever.text_precision"),
        ({"train": {"dense": {"precision": "half"}}}, "train.dense.precision"),
    ],
)
def test_a_bad_configuration_fails_before_any_work(built, tmp_path, capsys, setting, field):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({**FAST, **setting}))
    out = tmp_path / "s"
    code, err = _quick(capsys, "index", str(built / "corpus"), "--store", str(out),
                       "--config", str(cfg), limit_s=15)  # fmt: skip
    assert code == 2
    one_line_error(err, field)
    assert not (out / "staging").exists() and not (out / "versions").exists()


def test_a_nan_in_the_config_file_and_a_negative_flag_fail_at_once(built, tmp_path, capsys):
    cfg = tmp_path / "nan.json"
    cfg.write_text('{"train": {"lr": NaN}}')
    code, err = _quick(capsys, "index", str(built / "corpus"), "--store", str(tmp_path / "s"),
                       "--config", str(cfg))  # fmt: skip
    assert code == 2 and "finite" in one_line_error(err, "train.lr")
    code, err = _quick(capsys, "index", str(built / "corpus"), "--store", str(tmp_path / "s"),
                       "--k", "-3")  # fmt: skip
    assert code == 2 and "ids.kmeans.k" in one_line_error(err)


# ----------------------------------------------------------------------------- store files


@pytest.mark.parametrize("content", [b"\x00garbage{", b'{"sources": 5}', b"", b'[{"a": 1}]'])
def test_a_damaged_sources_file_is_a_damaged_store(store, built, capsys, content):
    (store / "sources.json").write_bytes(content)
    for argv in (["sources", "list"], ["index"], ["ingest", str(built / "corpus")]):
        code, err = _quick(capsys, *argv, "--store", str(store))
        assert code == EXIT_DAMAGED, (argv, err)
        one_line_error(err, "damaged store", "sources.json")


def test_an_unreadable_items_table_is_a_damaged_store_naming_it(store, capsys):
    items = Store(store).version().items
    data = bytearray(items.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    items.write_bytes(bytes(data))
    code, err = _quick(capsys, "index", "--store", str(store))
    assert code == EXIT_DAMAGED
    one_line_error(err, "damaged store", "items.parquet")


def test_a_full_disk_while_weights_are_written_is_an_os_error(monkeypatch, tmp_path):
    import safetensors.torch
    import torch

    from ace_index.storage.formats.tables import save_weights

    class SafetensorError(Exception):
        pass

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as e:
        save_weights({"a": torch.zeros(2)}, tmp_path / "w.safetensors")
    assert e.value.errno == 28 and e.value.filename == str(tmp_path / "w.safetensors")


# ----------------------------------------------------------------------------- caption files


def _coco(tmp_path, caption) -> str:
    path = tmp_path / "captions_val2017.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": caption}],
    }))  # fmt: skip
    return str(path)


def test_a_caption_that_is_not_text_is_one_line(tmp_path, capsys):
    src = _coco(tmp_path, 42)
    code, err = _quick(capsys, "import-captions", "coco", src, "--out", str(tmp_path / "c.jsonl"))
    assert code == 2 and "not text" in one_line_error(err)


@pytest.mark.parametrize("template", ["{x.__class__}", "{file_name!r}", "{file_name[0]}"])
def test_path_templates_fill_plain_names_only(tmp_path, capsys, template):
    src = _coco(tmp_path, "a cat")
    code, err = _quick(capsys, "import-captions", "coco", src, "--out",
                       str(tmp_path / "c.jsonl"), "--path-template", template)  # fmt: skip
    assert code == 2 and "plain {field} names" in one_line_error(err)


def test_two_entries_mapped_to_one_path_are_refused(tmp_path, capsys):
    src = _coco(tmp_path, "a cat")
    code, err = _quick(capsys, "import-captions", "coco", src, "--out",
                       str(tmp_path / "c.jsonl"), "--path-template", "all.jpg")  # fmt: skip
    assert code == 2 and "two entries map to the path 'all.jpg'" in one_line_error(err)


def test_two_splits_mapped_to_one_path_are_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    src_a, src_b = _coco(a, "x"), _coco(b, "y")
    code, err = _quick(capsys, "import-captions", "coco", f"{src_a}=train", f"{src_b}=test",
                       "--out", str(tmp_path / "c.jsonl"))  # fmt: skip
    assert code == 2 and "both the train and test splits" in one_line_error(err)


# ----------------------------------------------------------------------------- sources at publish


def test_a_run_that_fails_registers_no_source(store, built, tmp_path, capsys, monkeypatch):
    from ace_index.storage.build import publish

    extra = tmp_path / "extra"
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(extra, seed=11, counts=CorpusCounts(images=1, audio=0, videos=0))
    before = (store / "sources.json").read_text()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", str(store))

    monkeypatch.setattr(publish, "write_manifest", disk_full)
    code, _, err = ace(capsys, "ingest", str(extra), "--store", str(store))
    assert code == 2 and (store / "sources.json").read_text() == before
    monkeypatch.undo()
    code, out, err = ace(capsys, "ingest", str(extra), "--store", str(store), "--json")
    assert code == 0, err[-2000:]
    assert str(extra.resolve()) in (store / "sources.json").read_text()


# ----------------------------------------------------------------------------- long audio


def test_an_hour_of_audio_decodes_in_bounded_memory(tmp_path):
    import soundfile as sf

    from ace_core.media.audio_decoding import AUDIO_WINDOW_S, KEPT_WINDOWS, decode_audio

    path, sr = tmp_path / "hour.wav", 8000
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        block = (np.random.default_rng(0).standard_normal((sr * 60, 2)) * 0.1).astype(np.float32)
        for _ in range(60):
            f.write(block)
    out = decode_audio(str(path), sample_rate=sr)
    assert out.meta["duration_s"] == pytest.approx(3600)
    assert out.data.shape == (int(KEPT_WINDOWS * AUDIO_WINDOW_S * sr),)


def test_a_failed_build_leaves_no_store_folder_behind(built, tmp_path, capsys):
    out = tmp_path / "new-store"
    code, err = _quick(capsys, "index", str(built / "corpus"), "--store", str(out), "--k", "-3")
    assert code == 2 and not out.exists()


def test_split_names_the_split_of_files_that_name_none(tmp_path, capsys):
    src = tmp_path / "captions.json"  # a name that says no split
    src.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"image_id": 1, "caption": "a dog"}],
    }))  # fmt: skip
    out = tmp_path / "c.jsonl"
    code, err = _quick(capsys, "import-captions", "coco", f"{src}@photos", "--split", "train",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert json.loads(out.read_text()) == {"path": "photos/a.jpg", "captions": ["a dog"],
                                           "split": "train"}  # fmt: skip
