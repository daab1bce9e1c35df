"""Published versions as the command line and the service list them: one row per version,
and a version's stored evaluation."""

from __future__ import annotations

import json

from storage.store import Store


def list_versions(store: str) -> list[dict]:
    """One row per published version, oldest first."""
    s = Store(store)
    latest = s.latest()
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
                "eval": {k: (ev.get(k) or {}).get("R@1") for k in ("generative", "dense")},
            }
        )
    return rows


def version_eval(store: str, version: str | None = None) -> dict:
    """The eval.json of a version, with the version's name."""
    s = Store(store)
    v = s.resolve(version)
    ev = json.loads(s.version(v).eval.read_text())
    keys = ("protocol", "queries", "generative", "dense", "subsets", "ablations")
    return {"version": v, **{k: ev.get(k) for k in keys}}
