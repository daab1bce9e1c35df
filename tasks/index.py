"""Prefect tasks for building and publishing versions: thin wrappers over tasks/steps.py.

Only I/O tasks retry, and only on transient OS errors. Everything passed around is a path,
a version name or a small dict.
"""

from __future__ import annotations

import errno

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from storage.versions import ValidationError
from tasks import steps

TRANSIENT = {errno.EAGAIN, errno.EBUSY, errno.EIO, errno.ENOSPC, errno.ETIMEDOUT, errno.ESTALE}


def retry_on_transient_io(task, task_run, state) -> bool:
    """Retry condition: only OS errors that a second try can fix."""
    try:
        state.result()
    except OSError as e:
        return e.errno in TRANSIENT
    except Exception:  # noqa: BLE001 - anything else is not transient
        return False
    return False


@task(
    name="stage-version", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_transient_io
)
def stage_version(
    store: str, discovery_path: str, shard_outputs: list[dict], parent: str | None = None
) -> str:
    return steps.stage_version(store, discovery_path, shard_outputs, parent)


@task(name="stage-copy", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_transient_io)
def stage_copy(store: str, version: str) -> str:
    return steps.stage_copy(store, version)


@task(name="reuse-published")
def reuse_published(store: str, staged: str, config: dict) -> dict | None:
    return steps.reuse_published(store, staged, config)


@task(name="fit-semantic-ids")
def fit_ids(staged: str, config: dict) -> dict:
    return steps.fit_ids(staged, steps.index_config(config).ids)


@task(name="assign-semantic-ids")
def assign_ids(staged: str, store: str, parent: str) -> dict:
    return steps.assign_ids(staged, store, parent)


@task(name="train-retriever")
def train_retriever(staged: str, config: dict, init_from: str | None = None) -> dict:
    return steps.train_retriever(staged, config, init_from)


@task(
    name="publish-version",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on_transient_io,
)
def publish_version(
    store: str,
    staged: str,
    operation: str,
    expected_parent: str | None,
    config: dict,
    ids_report: dict,
) -> dict:
    run_id = flow_run.get_id()
    manifest = steps.publish_version(
        store,
        staged,
        operation=operation,
        expected_parent=expected_parent,
        config=config,
        ids_report=ids_report,
        flow_run_id=str(run_id) if run_id else None,
        encoders=steps.encoders_info(store, config["embed"]),
    )
    _artifacts(manifest)
    emit_event(
        event="ace.version.published",
        resource={
            "prefect.resource.id": f"ace.version.{manifest['version']}",
            "ace.store": str(store),
            "ace.operation": operation,
        },
        payload={
            "version": manifest["version"],
            "operation": operation,
            "parent_version": manifest["parent_version"],
            "store": str(store),
        },
    )
    return {
        k: manifest[k]
        for k in (
            "version",
            "parent_version",
            "operation",
            "counts",
            "id_diff",
            "eval",
            "ids",
            "reused_from",
        )
    }


def _artifacts(m: dict) -> None:
    key = f"ace-{m['version']}"
    rows = [
        {"metric": "items", "value": m["counts"]["items"]},
        {"metric": "ok", "value": m["counts"]["ok"]},
        {"metric": "failed", "value": m["counts"]["failed"]},
    ]
    for which in ("generative", "dense"):
        for k, v in (m["eval"].get(which) or {}).items():
            rows.append({"metric": f"{which} {k}", "value": v})
    create_table_artifact(rows, key=key, description=f"ACE index {m['version']}: counts and eval")
    d = m["id_diff"]
    create_markdown_artifact(
        f"# ID diff {m['parent_version'] or '(none)'} -> {m['version']}\n\n"
        f"| added | removed | changed | unchanged |\n|---|---|---|---|\n"
        f"| {d['added']} | {d['removed']} | {d['changed']} | {d['unchanged']} |\n",
        key=f"{key}-diff",
        description="identifier diff against the parent version",
    )


__all__ = [
    "ValidationError",
    "stage_version",
    "stage_copy",
    "reuse_published",
    "fit_ids",
    "assign_ids",
    "train_retriever",
    "publish_version",
]
