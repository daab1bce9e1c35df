"""A staged version (built, not yet published) loaded for queries, so that the build scores
its served path before publishing (issue 43: a version is published with its figures).

It is loaded from the staged folder as ``load_version`` loads a published one, with what a
published version reads from its manifest given by the build instead (its configuration, the
encoders' records, the fitted fusion weights from eval.json). Its name is ``staged-<folder>``:
the relevance calibrations fitted while it is scored are kept under that name in evaluations/
and renamed to the version's once it is published (``keep_calibrations``); a build that fails
removes them (``drop_calibrations``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ace_core.index_config import IndexConfig
from ace_core.retrieval.training import TrainConfig
from ace_index.query.loaded import LoadedVersion, read_for_queries
from ace_index.storage.store.layout import VersionLayout

PREFIX = "staged-"


@dataclass
class StagedVersion(LoadedVersion):
    """A LoadedVersion read from a staged folder: its held-out split from the folder's
    captions and the build's training settings (no manifest yet)."""

    staged_layout: VersionLayout | None = None
    train: TrainConfig | None = None

    def train_config(self) -> TrainConfig:
        return self.train

    def layout(self) -> VersionLayout:
        return self.staged_layout


def staged_name(staged: str | os.PathLike) -> str:
    return PREFIX + VersionLayout(staged).root.name


def load_staged(
    store: str, staged: str | os.PathLike, config: IndexConfig, encoders: dict
) -> StagedVersion:
    """The staged version at ``staged`` (its retriever trained, its eval written)."""
    layout = VersionLayout(staged)
    model, items, sids, captions = read_for_queries(layout)
    return StagedVersion(
        staged_name(staged),
        model,
        items,
        sids,
        {},  # sources: results' locations are not scored
        captions,
        embed=config.embed,
        encoders=encoders,
        store=store,
        fusion=json.loads(layout.eval.read_text()).get("fusion"),
        staged_layout=layout,
        train=config.train,
    )


def _calibrations(store, name: str) -> list:
    from ace_index.storage.store import open_store

    folder = open_store(store).evaluation_file(name, "x").parent
    return sorted(folder.glob(f"{name}-relevance-*.json")) if folder.is_dir() else []


def keep_calibrations(store: str, staged: str | os.PathLike, version: str) -> None:
    """The calibrations fitted while the staged version was scored, under its published name
    (before its first query, which would otherwise fit them again)."""
    name = staged_name(staged)
    for path in _calibrations(store, name):
        os.replace(path, path.with_name(version + path.name.removeprefix(name)))


def drop_calibrations(store: str, staged: str | os.PathLike) -> None:
    for path in _calibrations(store, staged_name(staged)):
        path.unlink(missing_ok=True)
