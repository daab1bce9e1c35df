"""One version per change, and a version published with its figures (issue 43, items 2 and 3):
a re-index equal to an older published version whose inputs LATEST holds publishes nothing;
the retrain raised for an ingest's version does nothing once a newer build trained on its
items; the served path is scored on the staged version, inside the store's build lock, before
LATEST moves, and the figures travel in the version's files and the manifest."""

from __future__ import annotations

import json
import logging

from ace_index.storage.store import Store
from ace_index.storage.store import locks as store_locks
from ace_index.storage.store.layout import VersionLayout


def _said(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "ace_stage", False)]


def test_scored_inside_the_lock_published_with_its_figures_and_a_duplicate_publishes_nothing(
    store, monkeypatch, caplog
):
    import ace_index.query.evaluate as evaluate
    from ace_index.flows.index import index_corpus, train_retriever
    from ace_index.storage.store.store import Store as LocalStore

    scored, moved = [], []
    score, move = evaluate.every_method, LocalStore.move_latest

    def scoring(vm, *a, **kw):
        scored.append((vm.version, str(store.resolve()) in store_locks._BUILD_LOCKS_HELD))
        return score(vm, *a, **kw)

    def moving(self, version, operation):
        listed = {f["path"] for f in self.folder_manifest(version)["files"]}
        moved.append((version, "served_eval.json" in listed, self.latest()))
        return move(self, version, operation)

    monkeypatch.setattr(evaluate, "every_method", scoring)
    monkeypatch.setattr(LocalStore, "move_latest", moving)
    out = train_retriever(str(store), explicit=True)  # a person's retrain of v1: v2
    assert out["published"] and out["version"] == "v000002"
    assert scored and all(name.startswith("staged-") and held for name, held in scored)
    assert moved == [("v000002", True, "v000001")]  # the figures were in before LATEST moved
    v2 = Store(store).version("v000002")
    kept = json.loads(v2.served_eval.read_text())
    assert out["served"]["served"] == kept["served"] and kept["queries"] <= 200
    manifest = Store(store).manifest("v000002")
    assert manifest["eval"]["served"]["R@1"] == kept["served"]["R@1"]
    assert not list((store / "evaluations").glob("staged-*"))  # renamed to the version's
    assert list((store / "evaluations").glob("v000002-relevance-*.json"))

    # the nightly (its parameters only) rebuilds v1's build over v1's items: LATEST (v2, a
    # retrain of v1) holds the same inputs, settings and code, so nothing is published
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = index_corpus(store=str(store))
    assert again["published"] is False and again["equals"] == "v000001"
    assert Store(store).versions() == ["v000001", "v000002"] and Store(store).latest() == "v000002"
    said = [line for line in _said(caplog) if "equals" in line]
    assert said == [
        "this build equals v000001, and LATEST (v000002) holds its inputs, settings and code: "
        "nothing published"
    ]


def test_ingest_then_rebuild_then_the_ingests_retrain_does_nothing(store, tmp_path, caplog):
    from ace_core.synth import CorpusCounts, write_sample_corpus
    from ace_index.flows.index import index_corpus, ingest_batch, train_retriever

    write_sample_corpus(tmp_path / "batch", seed=21, counts=CorpusCounts(2, 0, 0))
    ingested = ingest_batch(str(tmp_path / "batch"), str(store))
    assert ingested["operation"] == "incremental_append" and ingested["version"] == "v000002"
    rebuilt = index_corpus(store=str(store))  # the nightly, before the retrain got the slot
    assert rebuilt["operation"] == "full_rebuild" and rebuilt["version"] == "v000003"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        out = train_retriever(str(store), version="v000002")  # the trigger's parameters
    assert out["published"] is False and out["version"] == "v000003"
    assert Store(store).versions() == ["v000001", "v000002", "v000003"]
    assert _said(caplog) == [
        "retrain for v000002: v000003 (full_rebuild) already trained on every item of "
        "v000002: nothing retrained, nothing published"
    ]


def test_versions_published_before_keep_their_served_figures_under_evaluations(tmp_path):
    from ace_index.storage.catalog.versions import served_evaluation

    s = Store(tmp_path / "s")
    (s.version_dir("v000001")).mkdir(parents=True)
    s.evaluation_file("v000001", "auto").parent.mkdir(parents=True)
    old = {"path": "fused", "queries": 3, "served": {"R@1": 0.5}}
    s.evaluation_file("v000001", "auto").write_text(json.dumps(old))
    assert served_evaluation(s, "v000001") == {"version": "v000001", **old}
    new = {**old, "queries": 2}
    VersionLayout(s.version_dir("v000001")).served_eval.write_text(json.dumps(new))
    assert served_evaluation(s, "v000001")["queries"] == 2  # the version's own, first
    assert served_evaluation(s, "v000001", "captions") is None
