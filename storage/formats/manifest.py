"""A version's manifest read back as typed values: its configuration (older manifests' flat
setting names migrated) and its sources."""

from __future__ import annotations

import json

from ace_core.config_io import from_dict
from ace_core.index_config import IndexConfig
from ace_core.retrieval.dense import DENSE_BEFORE_BUDGET
from ace_core.retrieval.model import LEGACY_RETRIEVER
from ace_core.retrieval.training import TRAIN_BEFORE_BUDGET
from ace_index.storage.store import open_store
from ace_index.storage.store.sources import Source

# settings renamed when configs were nested: old manifests are read with their new names
_LEGACY_CONFIG_KEYS = {
    ("ingest_epochs",): ("ingest", "epochs"),
    ("ingest_lr_scale",): ("ingest", "lr_scale"),
    ("replay_ratio",): ("ingest", "replay_ratio"),
    ("train", "dense_epochs"): ("train", "dense", "epochs"),
    ("train", "dense_lr"): ("train", "dense", "lr"),
}


def config_from_manifest(config: dict) -> IndexConfig:
    """The typed configuration a manifest recorded (older manifests' flat names migrated)."""
    config = json.loads(json.dumps(config))  # a deep copy
    for old, new in _LEGACY_CONFIG_KEYS.items():
        parent = config
        for key in old[:-1]:
            parent = parent.get(key, {})
        if old[-1] in parent:
            value = parent.pop(old[-1])
            target = config
            for key in new[:-1]:
                target = target.setdefault(key, {})
            target[new[-1]] = value
    config.get("train", {}).pop("feature_cache_mb", None)  # features are stored since issue 40
    for section, before in (("retriever", LEGACY_RETRIEVER), ("train", TRAIN_BEFORE_BUDGET)):
        for key, value in before.items():  # older versions: the ACE decoder alone, in steps
            config.setdefault(section, {}).setdefault(key, value)
    dense = config.setdefault("train", {}).setdefault("dense", {})
    for key, value in DENSE_BEFORE_BUDGET.items():  # and the dense baseline in steps
        dense.setdefault(key, value)
    return from_dict(IndexConfig, config)


def version_config(store: str, version: str | None = None) -> IndexConfig:
    return config_from_manifest(open_store(store).manifest(version)["config"])


def recorded_config(store: str) -> tuple[IndexConfig, str] | None:
    """The configuration LATEST was built with and its version (None for a store that has
    published nothing): what a re-index uses unless options override it."""
    s = open_store(store)
    if not s.root.is_dir() or s.latest() is None:
        return None
    return version_config(store), s.latest()


def version_sources(store: str, version: str | None = None) -> dict[str, Source]:
    recorded = open_store(store).manifest(version).get("sources", [])
    return {s["source_id"]: Source(**s) for s in recorded}
