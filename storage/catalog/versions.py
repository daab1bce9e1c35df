"""Published versions as the command line and the service list them: one row per version,
and a version's stored evaluation."""

from __future__ import annotations

import json

from ace_index.storage.store import IndexStore, open_store
from ace_index.storage.store.layout import VersionLayout


def list_versions(store: str) -> list[dict]:
    """One row per published version, oldest first; ``pinned``: the version a rollback holds
    in place (storage/store/pin.py), so that no scheduled or triggered run publishes."""
    s = open_store(store)
    latest = s.latest()
    pin = s.pin()
    rows = []
    for v in s.versions():
        m = s.manifest(v)
        ev, c = m.get("eval", {}), m.get("counts", {})
        rows.append(
            {
                "version": v,
                "parent_version": m.get("parent_version"),
                "operation": m.get("operation"),
                "created_at": m.get("created_at"),
                "items": c.get("ok"),
                "failed": c.get("failed"),
                "sources": [src["source_id"] for src in m.get("sources", [])],
                "latest": v == latest,
                "pinned": pin is not None and v == pin["version"],
                "eval": {k: (ev.get(k) or {}).get("R@1") for k in ("generative", "dense")},
                "served": _served_r1(s, v),
            }
        )
    return rows


def version_eval(store: str, version: str | None = None) -> dict:
    """The eval.json of a version, with the version's name, and the evaluation of its served
    path (``auto``) when the build kept one."""
    s = open_store(store)
    v = s.resolve(version)
    ev = json.loads(s.version(v).eval.read_text())
    keys = ("protocol", "queries", "generative", "dense", "subsets", "ablations")
    return {"version": v, **{k: ev.get(k) for k in keys}, "served": served_evaluation(s, v)}


def served_evaluation(s: IndexStore, version: str, path: str = "auto") -> dict | None:
    """The kept evaluation of ``path`` as served: for ``auto``, the one the version was
    published with (served_eval.json, since issue 43), else the one evaluations/ keeps
    (written by ``ace eval --path``, or by the build of a version published before); None
    when none was computed."""
    files = [VersionLayout(s.version_dir(version)).served_eval] if path == "auto" else []
    for f in [*files, s.evaluation_file(version, path)]:
        try:
            return {"version": version, **json.loads(f.read_text())}
        except (OSError, ValueError):
            continue
    return None


def _served_r1(s: IndexStore, version: str) -> dict | None:
    served = served_evaluation(s, version)
    return {"path": served["path"], "R@1": served["served"]["R@1"]} if served else None
