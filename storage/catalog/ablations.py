"""The ablations of a published version (docs/DESIGN.md, evaluation protocol): read from its
eval.json when it was built with them, else trained on demand and kept in the store."""

from __future__ import annotations

import json

from ace_index.storage.formats.tables import write_json_atomic
from ace_index.storage.store import open_store


def ablation_metrics(store: str, version: str | None = None) -> dict:
    """Test metrics of the ablations of a version: from its eval.json when it was built with
    them, else from the store's ablation results of that version, else trained now (each
    ablation trains its own model) and saved there, so the next call reuses them."""
    s = open_store(store)
    v = s.resolve(version)
    built = json.loads(s.version(v).eval.read_text()).get("ablations")
    if built:
        return built
    m = s.manifest(v)
    identity = {
        "version": v,
        "input_set_hash": m["input_set_hash"],
        "config_hash": m["config_hash"],
    }
    saved = s.ablations_file(v)
    if saved.exists():
        data = json.loads(saved.read_text())
        if data.get("for") == identity:
            return data["ablations"]
    from ace_core.retrieval.ablations import run_ablations  # torch: only when training
    from ace_index.storage.formats.manifest import version_config
    from ace_index.storage.formats.version_data import training_data

    result = run_ablations(training_data(s.version(v)), version_config(store, v))
    write_json_atomic({"for": identity, "ablations": result}, saved)
    return result
