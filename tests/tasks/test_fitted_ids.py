"""A killed build's fitted semantic IDs are kept in the store (storage/build/fitted_ids.py):
its next run with the same embeddings and settings reuses them (so its training checkpoint,
keyed by the IDs, resumes), other inputs fit anew, and a damaged kept fit is fitted again."""

from dataclasses import replace

import numpy as np
import pytest

import ace_index.tasks.build as build
from ace_core.ids.kmeans import KMeansConfig
from ace_core.ids.rqvae import RQVAEConfig
from ace_core.ids.semantic_ids import SemanticIDConfig
from ace_core.index_config import IndexConfig
from ace_index.storage.build import fitted_ids
from ace_index.storage.formats.semantic_id_table import read_semantic_ids
from ace_index.storage.store import open_store

N, D = 240, 16
CONFIG = IndexConfig(
    ids=SemanticIDConfig(
        kmeans=KMeansConfig(k=4),
        rqvae=RQVAEConfig(levels=2, codebook_size=8, max_epochs=3, batch_size=64),
        faiss_reference=False,
    )
)


class Fits:
    """fit_semantic_ids, counting its calls, with another RQ-VAE seed on each call: like the
    RQ-VAE at 100k items, a second fit of the same inputs gives other IDs."""

    def __init__(self, monkeypatch):
        self.calls, self.fit = 0, fitted_ids.fit_semantic_ids
        monkeypatch.setattr(fitted_ids, "fit_semantic_ids", self)

    def __call__(self, ids, x, config):
        self.calls += 1
        seed = replace(config.rqvae, seed=config.rqvae.seed + 100 * self.calls)
        return self.fit(ids, x, replace(config, rqvae=seed))


@pytest.fixture
def store(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    corpus = {"x": rng.standard_normal((N, D)).astype(np.float32)}
    ids = [f"item-{i:04d}" for i in range(N)]
    monkeypatch.setattr(build, "version_embeddings", lambda v: (ids, None, corpus["x"]))
    root = tmp_path / "store"
    root.mkdir()
    return root, corpus


def _staged(root):
    return open_store(root).new_staging_version()


def _fit(root, config=CONFIG):
    v = _staged(root)
    return v, build.fit_version_ids(str(v.root), str(root), config)


def test_the_next_run_of_a_killed_build_reuses_its_ids(store, monkeypatch):
    root, _ = store
    fits = Fits(monkeypatch)
    first, report = _fit(root)
    kept_ids = read_semantic_ids(first.semantic_ids).sids
    kept_books = {f.name: f.read_bytes() for f in first.codebooks.iterdir()}
    open_store(root).discard_staged(first)  # the killed build's staged version is gone
    again, report_again = _fit(root)
    assert fits.calls == 1
    assert read_semantic_ids(again.semantic_ids).sids == kept_ids
    assert {f.name: f.read_bytes() for f in again.codebooks.iterdir()} == kept_books
    assert report_again == report and report["n_items"] == N


def test_other_embeddings_or_settings_fit_anew(store, monkeypatch):
    root, corpus = store
    fits = Fits(monkeypatch)
    _fit(root)
    corpus["x"] = corpus["x"] * 1.01
    _fit(root)
    other = replace(CONFIG, ids=replace(CONFIG.ids, kmeans=KMeansConfig(k=3)))
    _, report = _fit(root, other)
    assert fits.calls == 3 and report["k"] == 3
    kept = list(fitted_ids.fits_dir(open_store(root).staging_dir).iterdir())
    assert len(kept) == fitted_ids.KEEP  # the oldest fit pruned


@pytest.mark.parametrize("damage", ["semantic_ids.parquet", "codebooks/config.json", "done.json"])
def test_a_damaged_kept_fit_is_fitted_again_not_trusted(store, monkeypatch, damage):
    root, _ = store
    fits = Fits(monkeypatch)
    first, _ = _fit(root)
    (entry,) = fitted_ids.fits_dir(open_store(root).staging_dir).iterdir()
    target = entry / damage
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    again, _ = _fit(root)
    assert fits.calls == 2
    assert read_semantic_ids(again.semantic_ids).sids != read_semantic_ids(first.semantic_ids).sids
    third, _ = _fit(root)  # the new fit is kept, whole
    assert fits.calls == 2
    assert read_semantic_ids(third.semantic_ids).sids == read_semantic_ids(again.semantic_ids).sids
