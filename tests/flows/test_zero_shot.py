"""A corpus with no captions at all indexes with the tiny aligned encoders and answers text
queries through their text towers (the zero-shot path), checked against the towers' own dense
search; the towers are pinned by the version's manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ace_core.retrieval.fusion import COMPONENTS
from ace_core.tiny_encoders import index_args
from ace_index.flows.cli import main
from ace_index.query.loaded import load_version

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"
FAST = {
    "train": {"epochs": 30, "eval_every": 10, "dense": {"epochs": 3}},
    "ids": {"rqvae": {"max_epochs": 20}},
    "embed": {"shard_size": 64},
}


def run(capsys, *argv) -> dict:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def captionless(prefect_harness, tmp_path_factory):
    """(store, {path: captions}) of a 40-item corpus indexed without its captions."""
    if not (TINY / "tiny-encoders.json").exists():
        pytest.skip(f"no tiny encoders at {TINY}")
    from ace_core.world import write_world_corpus

    root = tmp_path_factory.mktemp("captionless")
    corpus, store = root / "c", root / "s"
    write_world_corpus(corpus, {"image": 28, "audio": 12}, seed=321)
    captions = {}
    for line in (corpus / "captions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        captions[rec["path"]] = rec["captions"]
    (corpus / "captions.jsonl").unlink()
    cfg = root / "fast.json"
    cfg.write_text(json.dumps(FAST))
    weights = index_args(TINY)  # the options `ace tiny-encoders` prints
    assert main(["index", str(corpus), "--store", str(store), "--config", str(cfg), *weights]) == 0
    return store, captions


def test_a_captionless_corpus_answers_through_the_text_towers(captionless, capsys):
    store, captions = captionless
    from ace_index.query.search import search_version

    first = next(iter(captions.values()))[0]
    fused = run(capsys, "query", first, "--store", str(store), "-k", "10")
    assert fused["path"] == "fused" and fused["mode"] == "fused"  # auto: the fused path
    assert set(fused["results"][0]["components"]) == set(COMPONENTS)
    out = run(capsys, "query", first, "--store", str(store), "-k", "10", "--path", "generative")
    assert out["path"] == "zero-shot"  # pure generation: the version has no captions
    for answer in (fused, out):  # no validation queries: the default relevance, said so
        assert answer["relevance_calibrated"] is False and answer["no_good_match"] is None
        rel = [r["relevance"] for r in answer["results"]]
        assert all(0 <= x <= 1 for x in rel) and rel == sorted(rel, reverse=True)
    top = out["results"][0]
    assert top["relevance"] == round(math.exp(top["score"]), 4)  # the decoder's probability
    loaded, texts = _cached_model(store, load_version), [c[0] for c in captions.values()]
    generated = search_version(loaded, texts, 10, path="generative")  # what the CLI ran above
    assert [r["path"] for r in generated.results[0]] == [r["path"] for r in out["results"]]
    found = _found(captions, generated.results)
    fused_found = _found(captions, search_version(loaded, texts, 10).results)
    towers_found = sum(_tower_dense(store, caps[0], path) for path, caps in captions.items())
    recall, tower_recall = found / len(captions), towers_found / len(captions)
    print(f"zero-shot generative R@10 {recall:.3f}, text-tower dense R@10 {tower_recall:.3f}")
    assert recall >= 0.6, (recall, tower_recall)
    assert recall >= 0.75 * tower_recall, (recall, tower_recall)
    assert fused_found >= towers_found  # a caption-less version's fused path ranks by the towers


def _found(captions: dict, results) -> int:
    """How many items are among their own first caption's results."""
    return sum(p in [r["path"] for r in row] for p, row in zip(captions, results))


def _tower_dense(store: Path, text: str, path: str, k: int = 10) -> bool:
    """Is ``path`` in the top k of the text tower's own cosine search (its modality only)?"""
    vm = _cached_model(store, load_version)
    row = next(n for n, i in enumerate(vm.model.item_ids) if vm.items[i]["path"] == path)
    space = next(s for s in vm.text_spaces().values() if row in s.rows)
    q = space.embed_text([text])
    emb = vm.model.item_emb[space.rows][:, : q.shape[1]]
    order = space.rows[np.argsort(-(emb @ q[0]))[:k]]
    return row in order


_MODELS: dict = {}


def _cached_model(store, load):
    if store not in _MODELS:
        _MODELS[store] = load(str(store))
    return _MODELS[store]


def test_the_manifest_pins_the_text_towers(captionless, capsys):
    store, _ = captionless
    from ace_index.storage.store import Store

    manifest = Store(str(store)).manifest()
    for record in manifest["encoders"].values():
        assert len(record["text_sha256"]) == 64 and record["weights_source"].endswith(
            ".safetensors"
        )
    out = run(capsys, "query", "a loud high tone", "--store", str(store), "--path", "captions")
    assert out["path"] == "captions" and len(out["results"]) == 10


def test_eval_queries_scores_the_users_own_pairs(captionless, capsys, tmp_path):
    store, captions = captionless
    queries = tmp_path / "q.jsonl"
    lines = [json.dumps({"query": caps[1], "path": p}) for p, caps in captions.items()]
    lines.append(json.dumps({"query": "a purple star", "path": "images/not_indexed.png"}))
    queries.write_text("\n".join(lines) + "\n")
    out = run(capsys, "eval", "--store", str(store), "--queries", str(queries))
    assert out["queries"] == len(captions) and out["unknown_items"] == ["images/not_indexed.png"]
    assert out["dense"] is None  # no captions: no caption-trained dense baseline
    assert out["bm25"] is None and out["path"] == "fused" and out["generative_path"] == "zero-shot"
    for name in ("auto", "generative", "text_tower_dense"):
        assert set(out[name]) == {"R@1", "R@5", "R@10", "MRR@10"}
    assert out["generative"]["R@10"] >= 0.75 * out["text_tower_dense"]["R@10"]
    assert out["auto"]["R@10"] >= out["text_tower_dense"]["R@10"]
    queries.write_text('{"query": "x"}\n')
    assert main(["eval", "--store", str(store), "--queries", str(queries)]) == 2
    assert "no item path" in capsys.readouterr().err


def test_an_ingest_with_captions_into_a_captionless_store_fits_every_component(
    captionless, tmp_path
):
    """The build's fusion fit with trained towers and captions: a captioned batch ingested
    into the caption-less store weighs all five components, and both kinds of item."""
    import shutil

    from ace_core.world import write_world_corpus
    from ace_index.storage.store import Store

    store = tmp_path / "s"
    shutil.copytree(captionless[0], store, symlinks=True)
    write_world_corpus(tmp_path / "b", {"image": 6, "audio": 2}, seed=654)
    assert main(["ingest", str(tmp_path / "b"), "--store", str(store)]) == 0
    fusion = Store(str(store)).manifest()["fusion"]
    assert set(fusion["weights"]) == set(COMPONENTS) and fusion["both_kinds"], fusion
    assert {k for k, w in fusion["uncaptioned"].items() if w} <= {"text_tower"}
