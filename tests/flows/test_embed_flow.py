import json
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tiny_encoder_args

from ace_index.flows.cli import main


def _run(capsys, *argv) -> dict:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


@pytest.fixture()
def corpus_with_bad_file(tmp_path, sample_corpus):
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    (corpus / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (corpus / "notes.txt").write_text("not media")
    return corpus


TINY = tiny_encoder_args(8)


def test_embed_cli_writes_shards_and_rerun_embeds_nothing(
    prefect_harness, capsys, tmp_path, corpus_with_bad_file
):
    store = tmp_path / "store"
    first = _run(capsys, "embed", str(corpus_with_bad_file), "--store", str(store), *TINY)
    assert first["items"] == 23 and first["ok"] == 22 and first["failed"] == 1
    assert first["skipped"] == 1
    assert first["by_modality"] == {"audio": 6, "image": 12, "video": 4}
    assert first["shards"] == 3 and first["shards_computed"] == 3 and first["embedded"] == 23

    items = pq.read_table(sorted((store / "staging/embed").rglob("*.items.parquet"))[0]).to_pylist()
    assert {r["status"] for r in items} <= {"ok", "failed"}
    emb_tables = [pq.read_table(p) for p in (store / "staging/embed").rglob("*.emb.parquet")]
    assert sum(t.num_rows for t in emb_tables) == 22
    emb_type = emb_tables[0].schema.field("embedding").type
    assert isinstance(emb_type, pa.FixedSizeListType) and emb_type.list_size == 512
    assert emb_type.value_type == pa.float32()
    failed = [
        r
        for s in (store / "staging/embed").rglob("*.items.parquet")
        for r in pq.read_table(s).to_pylist()
        if r["status"] == "failed"
    ]
    assert [r["path"] for r in failed] == ["images/broken.png"] and failed[0]["error"]

    again = _run(capsys, "embed", str(corpus_with_bad_file), "--store", str(store), *TINY)
    assert again["shards_computed"] == 0 and again["embedded"] == 0
    assert {k: again[k] for k in ("items", "ok", "failed")} == {"items": 23, "ok": 22, "failed": 1}


def test_deleted_shard_files_are_recomputed(prefect_harness, capsys, tmp_path, sample_corpus):
    store = tmp_path / "store"
    _run(capsys, "embed", str(sample_corpus), "--store", str(store), *TINY)
    victim = sorted((store / "staging/embed").rglob("*.emb.parquet"))[0]
    victim.unlink()
    again = _run(capsys, "embed", str(sample_corpus), "--store", str(store), *TINY)
    assert victim.exists() and again["shards_computed"] == 1


def test_moved_weights_keep_the_embedding_cache(prefect_harness, capsys, tmp_path, sample_corpus):
    shipped = Path(__file__).resolve().parents[2] / "models" / "tiny" / "ace-tiny-clip.safetensors"
    first, moved = tmp_path / "a" / "clip.safetensors", tmp_path / "b" / "clip.safetensors"
    for folder in (first.parent, moved.parent):
        folder.mkdir()
    shutil.copy(shipped, first)
    store = tmp_path / "store"

    def embed(weights):
        args = ["--image-model", "ace-tiny-clip", "--image-weights", str(weights),
                "--audio-checkpoint", "random", "--shard-size", "8"]  # fmt: skip
        return _run(capsys, "embed", str(sample_corpus), "--store", str(store), *args)

    assert embed(first)["shards_computed"] > 0
    first.rename(moved)
    assert embed(moved)["shards_computed"] == 0
    for thread in threading.enumerate():  # the warm-up of moved weights, left to no one else
        if thread.name == "encoder-warm-up":
            thread.join()


def test_bad_usage_exits_2_with_one_line(capsys, tmp_path):
    assert main(["embed", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corpus directory not found" in err[0]
    assert main(["embed"]) == 2
    capsys.readouterr()
    for argv, reason in (
        (["--image-model", "no-such-model"], "unknown open_clip model"),
        (["--shard-size", "0"], "--shard-size must be positive"),
    ):
        assert main(["embed", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and reason in err[0]
    bad = tmp_path / "bad.json"
    bad.write_text('{"retriever": {"no_such_setting": 1}}')
    assert main(["index", str(tmp_path), "--config", str(bad)]) == 2
    assert "unknown RetrieverConfig settings" in capsys.readouterr().err


def test_encoders_warm_up_in_the_background_and_are_built_once(tmp_path, monkeypatch):
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig
    from ace_core.synth import CorpusCounts, write_sample_corpus
    from ace_index.tasks import embed as tasks_embed

    write_sample_corpus(tmp_path / "c", seed=3, counts=CorpusCounts(images=2, audio=1, videos=0))
    write_sample_corpus(tmp_path / "a", seed=3, counts=CorpusCounts(images=0, audio=1, videos=0))
    config = EmbedConfig(
        image=ImageEncoderConfig("ace-tiny-vit", "random", seed=11),
        audio=AudioEncoderConfig(checkpoint="random", seed=11),
    )
    built = []  # this config's builds only: an earlier test's warm-up thread may still run
    real = tasks_embed.build_encoder

    def counted(modality, cfg, *a, **k):
        built.extend([modality] if cfg == config else [])
        return real(modality, cfg, *a, **k)

    monkeypatch.setattr(tasks_embed, "build_encoder", counted)
    assert tasks_embed._first_modalities(str(tmp_path / "a"), 200) == {"audio"}
    tasks_embed.warm_up_encoders(config, str(tmp_path / "c")).join()
    assert sorted(built) == ["audio", "image", "video"]
    encoders = tasks_embed.encoders_for(config, {"image", "audio"})  # what a shard asks for
    assert sorted(built) == ["audio", "image", "video"]  # nothing built twice
    assert encoders["video"].image is encoders["image"]
