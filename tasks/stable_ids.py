"""The IDs of a full re-index: LATEST's IDs kept for every item still present and new items
assigned with its frozen codebooks (ace_core/ids/stable_ids.py), unless the codebooks drifted,
the embedding or ID settings changed, or ``--refit`` was given. The reason is recorded in the
version's ID report (``id_policy``), which `ace audit` shows."""

from __future__ import annotations

import shutil

from prefect import task

from ace_core.ids.stable_ids import MAX_DRIFT, codebook_drift, keep_ids
from ace_core.index_config import IndexConfig
from ace_index.storage.formats.codebooks import load_indexer
from ace_index.storage.formats.manifest import version_config
from ace_index.storage.formats.semantic_id_table import read_semantic_ids, write_semantic_ids
from ace_index.storage.formats.version_data import version_embeddings
from ace_index.storage.store import open_store
from ace_index.storage.store.layout import VersionLayout
from ace_index.tasks._progress import stage
from ace_index.tasks.build import fit_version_ids, ids_fitted


@task(name="keep-or-fit-semantic-ids")
def keep_or_fit_ids(staged: str, store: str, config: IndexConfig, refit: bool = False) -> dict:
    """IDs for a staged full rebuild: LATEST's kept where they can be, else refitted."""
    latest = open_store(store).latest()
    reason = refit_reason(store, latest, config, refit)
    if reason is None:
        report = _keep(staged, store, latest)
        if "id_policy" in report:
            return report
        reason = report["refit"]
    stage("IDs refitted: %s", reason)
    return {**fit_version_ids(staged, store, config), "id_policy": {"refit": reason}}


def refit_reason(store: str, latest: str | None, config: IndexConfig, refit: bool) -> str | None:
    """Why LATEST's IDs cannot be kept (None: they can, if the codebooks still fit)."""
    if refit:
        return "--refit was given"
    if latest is None:
        return "the first version of the store"
    recorded = version_config(store, latest)
    if recorded.embed != config.embed:
        return f"the embedding settings differ from {latest}'s"
    if recorded.ids != config.ids:
        return f"the ID settings differ from {latest}'s"
    return None


def _keep(staged: str, store: str, latest: str) -> dict:
    v, p = VersionLayout(staged), open_store(store).version(latest)
    indexer = load_indexer(p.codebooks)
    ids, _, x = version_embeddings(v)
    drift = codebook_drift(indexer, x, version_embeddings(p)[2])
    if drift is None:
        return {"refit": f"the IDs of {latest} cannot be extended ({indexer.config.mode} mode)"}
    if drift["drift"] > MAX_DRIFT:
        return {"refit": f"codebook drift {drift['drift']:.3f} > {MAX_DRIFT} against {latest}"}
    shutil.copytree(p.codebooks, v.codebooks)
    merged, report = keep_ids(indexer, read_semantic_ids(p.semantic_ids), ids, x)
    write_semantic_ids(merged, v.semantic_ids)
    ids_fitted(report)
    stage(
        "IDs kept from %s: %d kept, %d new (codebook drift %.3f <= %s)",
        latest,
        report["kept_items"],
        report["new_items"],
        drift["drift"],
        MAX_DRIFT,
    )
    return {**report, "id_policy": {"kept_from": latest, **drift}}
