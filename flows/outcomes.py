"""How a build run ends: published with its served-path figures, or nothing published (nothing
changed, equal to a published version, pinned by a rollback, a retrain a newer build covers),
each said in one stage line, and the report the flows return.

The served path is scored on the staged version, before it is published and under the
store's build lock (issue 43): a version is published with its figures (served_eval.json,
listed in its manifest), its run's artifacts carry them, and the scoring never overlaps the
next build of the store. The test queries are a seeded sample (query/evaluate.py).
"""

from __future__ import annotations

import time

from prefect import task

from ace_core.errors import AceInputError
from ace_core.index_config import IndexConfig
from ace_core.media.embed_config import embed_cache_key
from ace_index.storage.build.dedupe import retrain_target
from ace_index.storage.catalog.versions import served_evaluation
from ace_index.storage.formats.shards import read_encoders
from ace_index.storage.store import open_store
from ace_index.storage.store.pin import remove_pin
from ace_index.tasks import build as t
from ace_index.tasks._progress import stage


@task(name="evaluate-served-path")
def evaluate_staged(store: str, staged: str, config: IndexConfig) -> dict | None:
    """The staged version's test queries (a sample) on the path its queries will be served by
    (``auto``), written into it; None without test captions (nothing to score on)."""
    from ace_index.query.evaluate import evaluate_staged as score

    encoders = read_encoders(open_store(store).embed_cache_dir(embed_cache_key(config.embed)))
    try:
        out = score(store, staged, config, encoders)
    except AceInputError as e:
        stage("served path not evaluated: %s", e)
        return None
    stage(
        "served path (%s): test R@1 %s, R@10 %s; dense R@1 %s (%d of %d test queries)",
        out["path"],
        out["served"]["R@1"],
        out["served"]["R@10"],
        (out["dense"] or {}).get("R@1"),
        out["queries"],
        out["sampled_from"],
    )
    return out


def publish_evaluated(
    store: str,
    staged: str,
    config: IndexConfig,
    operation: str,
    parent: str | None,
    ids_report: dict,
) -> tuple[dict, dict | None]:
    """Score the staged version's served path, then publish it (call under the build lock):
    the published report and the served figures."""
    from ace_index.query.staged import keep_calibrations

    served = evaluate_staged(store, staged, config)
    published = t.publish_version(store, staged, operation, parent, config, ids_report)
    keep_calibrations(store, staged, published["version"])
    return published, ({"version": published["version"], **served} if served else None)


def dropped_calibrations(store: str, staged: str) -> None:
    """A staged version that was not published: the calibrations fitted while scoring it."""
    from ace_index.query.staged import drop_calibrations

    drop_calibrations(store, staged)


def unchanged(
    store: str, started: float, shards=(), pin: dict | None = None, equal: str | None = None
) -> dict:
    """The report of a run that publishes nothing because nothing changed (an ingest with
    nothing new, a re-index equal to LATEST) or because the build equals ``equal``, a
    published version whose inputs, settings and code LATEST holds (a retrain of it;
    storage/build/dedupe.py). An explicit run lifts the pin all the same (call under the
    build lock)."""
    s = open_store(store)
    latest = s.latest()
    m = s.manifest(latest)
    zero = {"added": 0, "removed": 0, "changed": 0, "unchanged": m["counts"]["ok"]}
    published = {**m, "id_diff": zero, "reused_from": None}
    if equal is None or equal == latest:
        stage("nothing changed since %s: nothing published", latest)
    else:
        stage(
            "this build equals %s, and LATEST (%s) holds its inputs, settings and code: "
            "nothing published",
            equal,
            latest,
        )
    if pin is not None:
        remove_pin(store)
    out = report(published, list(shards), started, served_evaluation(s, latest))
    return lifted(pin, {**out, "published": False, "operation": "none", "equals": equal})


def retrain_base(
    store: str, version: str | None, explicit: bool
) -> tuple[str | None, dict | None]:
    """The version a retrain trains (None: LATEST), or the report of one that does nothing:
    a run no person started, raised for ``version`` (the trigger after its ingest), that a
    newer build already covers (storage/build/dedupe.py). A person's run trains the version
    named."""
    if not version or explicit:
        return version or None, None
    s = open_store(store)
    target, why = retrain_target(s, s.resolve(version))
    if target is not None:
        if why:
            stage("%s", why)
        return target, None
    stage("retrain for %s: %s: nothing retrained, nothing published", version, why)
    latest = s.latest()
    return None, {"published": False, "operation": "none", "version": latest, "covered": why}


def pinned(pin: dict, what: str) -> dict:
    """The result of a run that no person started while a rollback pins LATEST: nothing
    published, said in one line."""
    stage(
        "pinned: %s stays served (%s at %s): this %s run, not started by a person, publishes "
        "nothing; `ace rollback --unpin` or an explicit `ace index` lifts the pin",
        pin["version"],
        pin["reason"],
        pin["at"],
        what,
    )
    return {
        "published": False,
        "pinned": True,
        "operation": "none",
        "version": pin["version"],
        "pin": pin,
    }


def lifted(pin: dict | None, out: dict) -> dict:
    """An explicit run's report, saying in one line that it lifted a rollback's pin (the
    publish removed it before LATEST moved; storage/store/pin.py)."""
    if pin is None:
        return {**out, "pin_lifted": None}
    stage(
        "lifted the pin on %s (%s): this run was started by a person", pin["version"], pin["reason"]
    )
    return {**out, "pin_lifted": pin}


def report(
    published: dict, shards: list[dict], started: float, served: dict | None, removed=()
) -> dict:
    return {
        "published": True,
        "version": published["version"],
        "parent_version": published["parent_version"],
        "operation": published["operation"],
        "items": published["counts"],
        "ids": published["ids"],
        "eval": {"version": published["version"], **published["eval"]},
        "served": served,
        "reused_from": published["reused_from"],
        "id_diff": published["id_diff"],
        "removed_items": list(removed),
        "failed_items": published.get("failed_items", []),
        "shards_computed": sum(o["computed"] for o in shards),
        "seconds": round(time.perf_counter() - started, 2),
    }
