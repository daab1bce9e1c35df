"""The one place that knows the file names of a version folder.

versions/<version>/
  manifest.json              version, parent, operation, sources, config, files + sha256, ...
  manifest.sha256            sha256 of manifest.json (checked whenever the manifest is read)
  items.parquet              one row per discovered file, good or bad (with its source_id)
  embeddings/part-*.parquet  item_id, modality, embedding
  captions.parquet           item_id, caption, split
  semantic_ids.parquet       item_id, coarse, fine, suffix, sid
  codebooks/                 K-Means centroids, RQ-VAE weights + config
  retriever/                 retriever weights + config + tokenizer
  eval.json                  metrics of this version
  served_eval.json           its test queries (a sample) on the path it serves, before publish
  build_key                  hash of what decided IDs and retriever (reuse of a published build)
  reused_from                the version whose build this one reuses, when it does
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ace_index.storage.store.errors import DamagedStoreError

MANIFEST_MAX_BYTES = 256 << 20


@dataclass(frozen=True)
class VersionLayout:
    """Paths inside one version folder (published or staged)."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def manifest_sum(self) -> Path:
        """sha256 of manifest.json, written when the version is published."""
        return self.root / "manifest.sha256"

    @property
    def items(self) -> Path:
        return self.root / "items.parquet"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    def embedding_part(self, n: int) -> Path:
        return self.embeddings_dir / f"part-{n:05d}.parquet"

    def embedding_parts(self) -> list[Path]:
        return sorted(self.embeddings_dir.glob("part-*.parquet"))

    @property
    def captions(self) -> Path:
        return self.root / "captions.parquet"

    @property
    def semantic_ids(self) -> Path:
        return self.root / "semantic_ids.parquet"

    @property
    def codebooks(self) -> Path:
        return self.root / "codebooks"

    @property
    def retriever(self) -> Path:
        return self.root / "retriever"

    @property
    def retriever_weights(self) -> Path:
        return self.retriever / "weights.safetensors"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def served_eval(self) -> Path:
        """The served path's evaluation, made by the build before publishing (versions
        published before it have theirs under the store's evaluations/)."""
        return self.root / "served_eval.json"

    @property
    def build_key(self) -> Path:
        return self.root / "build_key"

    @property
    def reused_from(self) -> Path:
        return self.root / "reused_from"

    # what a published build lends to a version with the same inputs
    def build_outputs(self) -> tuple[Path, ...]:
        return (self.semantic_ids, self.codebooks, self.retriever, self.eval)

    # what a retrain starts from: the same items, embeddings, captions, IDs and codebooks
    def data_files(self) -> tuple[Path, ...]:
        return (self.items, self.captions, self.semantic_ids, self.embeddings_dir, self.codebooks)

    def __str__(self) -> str:
        return str(self.root)

    def __fspath__(self) -> str:
        return str(self.root)


def manifest_sum(layout: VersionLayout) -> str | None:
    """The sha256 recorded for a version's manifest (None for versions older than it)."""
    try:
        return layout.manifest_sum.read_text().split()[0]
    except (OSError, IndexError):
        return None


def check_manifest_sum(layout: VersionLayout, raw: bytes) -> None:
    """A manifest must match the sha256 written beside it when it was published."""
    want = manifest_sum(layout)
    if want is not None and hashlib.sha256(raw).hexdigest() != want:
        raise DamagedStoreError(
            f"{layout.manifest}: does not match its sha256 ({layout.manifest_sum.name}); "
            "it was edited or damaged after publishing"
        )
