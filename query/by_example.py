"""Query by example: an indexed item, or a file the user gives (an image, a sound, a video
clip), through the decoder's item-memory path. A given file is embedded with the version's
own encoders (built from its recorded weights and checked against the manifest, as the text
towers are) and searched among the items of its item space (an image finds images and
videos; a sound finds sounds), or among ``modality``'s items."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ace_core.media.decoding import pixels_to_decode
from ace_core.media.discovery import MediaFile, sha256_file, sniff_modality
from ace_core.media.modalities import SPACE_OF_MODALITY, kinds_sharing_spaces
from ace_core.media.pipeline import build_encoder, embed_files
from ace_core.retrieval.generation import search_by_embedding
from query.loaded import LoadedVersion
from query.request import DEFAULT_BEAM, QueryError, checked_k, checked_modality
from query.towers import checked_encoder

MAX_FILE_BYTES = 64 << 20  # an uploaded example (a photo, a sound, a short clip)
MAX_EXAMPLE_PIXELS = 16_000_000  # decoded (a JPEG at its reduced scale): about 64 MB as RGBA
LARGEST_INPUT_SIDE = 224  # px: the largest side an image encoder reads (a JPEG's draft floor)
_EMBEDDING = threading.BoundedSemaphore(2)  # examples decoded and embedded at once


def similar_items(loaded: LoadedVersion, item_id: str, k: int) -> list[dict]:
    """The items nearest an indexed item, itself first."""
    k = checked_k(k)
    if item_id not in loaded.row_of:
        raise QueryError(f"item {item_id[:64]!r} is not in version {loaded.version}", 404)
    row = loaded.row_of[item_id]
    kind = loaded.items[item_id]["modality"]
    hits = by_embedding(loaded, loaded.model.item_emb[row], kind, k, DEFAULT_BEAM)
    return [loaded.result(i, score) for i, score in hits]


def search_by_file(
    loaded: LoadedVersion, path: str | Path, k: int, modality: str | None = None
) -> dict:
    """Results for a media file: ``{"modality": its kind, "results": [...]}``."""
    k, modality = checked_k(k), checked_modality(modality)
    kind, vector = embed_example(loaded, path)
    if modality is not None and SPACE_OF_MODALITY[modality] != SPACE_OF_MODALITY[kind]:
        raise QueryError(f"a {kind} cannot be compared with {modality} items (another space)")
    hits = by_embedding(loaded, vector, kind, k, DEFAULT_BEAM, [modality] if modality else None)
    return {"modality": kind, "results": [loaded.result(i, score) for i, score in hits]}


def by_embedding(
    loaded: LoadedVersion,
    vector: np.ndarray,
    modality: str,
    k: int,
    beam: int,
    among: list[str] | None = None,
) -> list[tuple[int, float]]:
    """Items nearest an item-space ``vector`` of ``modality`` through the decoder's
    item-memory path: among the kinds sharing its space (another encoder's embeddings do not
    compare), or ``among``."""
    rows, trie = loaded.subset_of(among or sorted(kinds_sharing_spaces({modality})))
    if not len(rows):
        return []
    model = loaded.model
    found = search_by_embedding(
        model.decoder, vector[None], trie, beam, min(k, len(rows)), device=model.device
    )
    return [(int(rows[i]), s) for i, s in found[0]]


def embed_example(loaded: LoadedVersion, path: str | Path) -> tuple[str, np.ndarray]:
    """(modality, embedding) of a media file, as indexing would have embedded it."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise QueryError(f"file too large ({size} bytes, at most {MAX_FILE_BYTES})", 413)
    kind = sniff_modality(path)
    if kind is None:
        raise QueryError("not an image, sound or video this index reads", 415)
    pixels = pixels_to_decode(str(path), LARGEST_INPUT_SIDE) if kind == "image" else 0
    if pixels > MAX_EXAMPLE_PIXELS:
        raise QueryError(
            f"image too large to search by ({pixels / 1e6:.0f} Mpx decoded, "
            f"at most {MAX_EXAMPLE_PIXELS / 1e6:.0f}; a JPEG may be larger)",
            413,
        )
    f = MediaFile("example", str(path), sha256_file(path), kind, size)
    encoder = loaded.example_encoder(kind, _encoder_factory(loaded))
    with _EMBEDDING:  # a decode holds up to a few hundred MB: a few at a time
        result = next(embed_files([f], {kind: encoder}, loaded.embed_config().pipeline))
    if result.embedding is None:
        raise QueryError(f"cannot read the {kind} file: {result.error}", 415)
    return kind, np.asarray(result.embedding, np.float32)


def _encoder_factory(loaded: LoadedVersion):
    def build(kind: str, shared):
        space = SPACE_OF_MODALITY[kind]
        if space != kind:  # video: frames through its space's (the image) encoder
            return build_encoder(kind, loaded.embed_config(), shared=shared(space))
        return checked_encoder(
            loaded.version,
            space,
            loaded.embed_config(),
            loaded.encoders,
            device=loaded.model.device,
        )

    return build
