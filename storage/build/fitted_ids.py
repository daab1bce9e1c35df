"""A store's last semantic-ID fits, kept under staging/ so that a killed build's next run
reuses its codebooks and IDs instead of fitting them again.

The RQ-VAE's training is not bit-reproducible from one process to the next at 100k items
(most likely the BLAS threads), so a killed first build that fitted again would get other
IDs, miss its training checkpoint (tasks/train.py ``training_key`` includes the IDs) and
train from the start. With the same items, embeddings and ID settings the next run takes
the kept fit.

STORE/staging/fitted-ids/<key>/
  codebooks/              as in a version (storage/formats/codebooks.py)
  semantic_ids.parquet    as in a version
  done.json               the sha256 of each file above; written last (an entry without it is
                          unfinished and ignored)

key: sha256 of the ID settings, the item IDs and their embeddings, in the fit's order.
An entry whose files do not match done.json is deleted and the IDs are fitted again: a
damaged fit is never trusted. The newest ``KEEP`` entries are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ace_core.config_io import config_hash
from ace_core.ids.semantic_ids import fit_semantic_ids
from ace_core.media.discovery import sha256_file
from ace_index.storage.build.staging import rows_digest
from ace_index.storage.formats.codebooks import save_indexer
from ace_index.storage.formats.semantic_id_table import write_semantic_ids
from ace_index.storage.store.disk import fsync_tree, write_durably
from ace_index.storage.store.layout import VersionLayout

logger = logging.getLogger(__name__)

KEEP = 2  # fits kept: the newest, and the one before (a run of other settings in between)


def fit_or_reuse(staging_dir: str | Path, v: VersionLayout, item_ids, x, config) -> tuple:
    """(ID report, whether a kept fit was reused): the kept fit of the same items, embeddings
    and settings copied into ``v``, else a new fit written there and kept."""
    key = fit_key(item_ids, x, config)
    report = reuse_fit(staging_dir, key, v)
    if report is not None:
        return report, True
    indexer, sids = fit_semantic_ids(item_ids, x, config)
    save_indexer(indexer, v.codebooks)
    write_semantic_ids(sids, v.semantic_ids)
    keep_fit(staging_dir, key, v)
    return indexer.report, False


def fit_key(item_ids: Sequence[str], x: np.ndarray, ids_config) -> str:
    """What a fit's result depends on: its settings, its items and their embeddings."""
    rows = rows_digest(item_ids, np.asarray(x, np.float32))
    return config_hash({"ids": ids_config, "embeddings": rows})[:32]


def fits_dir(staging_dir: str | Path) -> Path:
    return Path(staging_dir) / "fitted-ids"


def _kept_names(v: VersionLayout) -> list[str]:
    """The files a fit leaves in a version, by their path under the version's root."""
    return ["semantic_ids.parquet"] + [f"codebooks/{f.name}" for f in sorted(v.codebooks.iterdir())]


def _kept_name(name: str) -> bool:
    parts = name.split("/")
    return name == "semantic_ids.parquet" or (
        len(parts) == 2 and parts[0] == "codebooks" and parts[1] not in ("", ".", "..")
    )


def keep_fit(staging_dir: str | Path, key: str, v: VersionLayout) -> None:
    """Copy a staged version's fitted codebooks and IDs into the store's kept fits."""
    entry = fits_dir(staging_dir) / key
    if (entry / "done.json").exists():
        return
    tmp = fits_dir(staging_dir) / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
    (tmp / "codebooks").mkdir(parents=True)
    sums = {}
    for name in _kept_names(v):
        shutil.copy2(v.root / name, tmp / name)
        sums[name] = sha256_file(tmp / name)
    fsync_tree(tmp)
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)
    write_durably(entry / "done.json", json.dumps({"sha256": sums}, indent=2))
    _prune(fits_dir(staging_dir))


def reuse_fit(staging_dir: str | Path, key: str, v: VersionLayout) -> dict | None:
    """The kept fit's ID report after copying its codebooks and IDs into ``v``; None when
    there is none or it is damaged (then deleted)."""
    entry = fits_dir(staging_dir) / key
    done = entry / "done.json"
    if not done.exists():
        return None
    try:
        sums = json.loads(done.read_text())["sha256"]
        bad = [n for n, s in sums.items() if not _kept_name(n) or sha256_file(entry / n) != s]
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        sums, bad = {}, [f"done.json ({e})"]
    if not bad and not {"semantic_ids.parquet", "codebooks/config.json"} <= set(sums):
        bad = ["done.json (a file missing)"]
    if bad:
        logger.warning("kept ID fit %s is damaged (%s): deleted", key[:12], ", ".join(bad))
        shutil.rmtree(entry, ignore_errors=True)
        return None
    v.codebooks.mkdir(parents=True, exist_ok=True)
    for name in sums:
        shutil.copy2(entry / name, v.root / name)
    os.utime(entry)  # the newest use: kept longest by _prune
    return json.loads((v.codebooks / "config.json").read_text())["report"]


def _prune(root: Path) -> None:
    entries = sorted(
        (p for p in root.iterdir() if (p / "done.json").exists()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for p in entries[KEEP:]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".*.tmp-*"):  # a killed copy's
        shutil.rmtree(p, ignore_errors=True)
