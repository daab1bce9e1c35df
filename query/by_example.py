"""Query by example: an indexed item, or a file the user gives (an image, a sound, a video
clip), through the decoder's item-memory path. A given file is embedded with the version's
own encoders (built from its recorded weights and checked against the manifest, as the text
towers are) and searched among the items of its item space (an image finds images and
videos; a sound finds sounds), or among ``modality``'s items, narrowed by the filters.

Relevance: Platt scaling (ace_core/retrieval/relevance.py) fit on the version's own items,
each searched by its own embedding with its own item the right answer (a seeded sample of
SELF_QUERIES), kept as ``evaluations/<v>-relevance-by-example.json``. A version of fewer
than MIN_SELF_QUERIES items (or one whose scores do not tell its items apart) has the
default instead: the decoder's own probability of each result among the candidates
(``exp(score)``), marked ``calibrated=False``, and no "no good match" is claimed. An
exact duplicate of the example (cosine of the embeddings at least DUPLICATE_COSINE) comes
first with relevance 1."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ace_core.media.decoding import pixels_to_decode
from ace_core.media.discovery import MediaFile, sha256_file, sniff_modality
from ace_core.media.modalities import SPACE_OF_MODALITY, kinds_sharing_spaces
from ace_core.media.pipeline import build_encoder, embed_files
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.generation import search_by_embedding
from ace_core.retrieval.relevance import Calibration, fit_calibration
from ace_index.query.filters import Filters
from ace_index.query.loaded import NO_FILTERS, LoadedVersion
from ace_index.query.relevance import RANKED, kept_or_fit
from ace_index.query.request import DEFAULT_BEAM, QueryError, checked_k, checked_modality
from ace_index.query.towers import checked_encoder

MAX_FILE_BYTES = 64 << 20  # an uploaded example (a photo, a sound, a short clip)
MAX_EXAMPLE_PIXELS = 16_000_000  # decoded (a JPEG at its reduced scale): about 64 MB as RGBA
LARGEST_INPUT_SIDE = 224  # px: the largest side an image encoder reads (a JPEG's draft floor)
_EMBEDDING = threading.BoundedSemaphore(2)  # examples decoded and embedded at once
EXAMPLE_PATH = "by-example"  # the name its calibration is kept under
SELF_QUERIES = 128  # items whose own embeddings fit the calibration (a seeded sample)
MIN_SELF_QUERIES = 32  # fewer items: the default calibration
DUPLICATE_COSINE = 0.99999  # an identical embedding, to float32 rounding


@dataclass(frozen=True)
class ExampleAnswer:
    modality: str  # the example's kind
    results: list[dict]  # LoadedVersion.result rows with ``relevance``, best first
    calibrated: bool  # False: the default calibration (exp of the score)
    no_good_match: bool | None  # None: no results, or no calibration to tell


def similar_items(loaded: LoadedVersion, item_id: str, k: int) -> ExampleAnswer:
    """The items nearest an indexed item, itself first."""
    k = checked_k(k)
    if item_id not in loaded.row_of:
        raise QueryError(f"item {item_id[:64]!r} is not in version {loaded.version}", 404)
    row = loaded.row_of[item_id]
    kind = loaded.items[item_id]["modality"]
    return by_embedding(loaded, loaded.model.item_emb[row], kind, k)


def search_by_file(
    loaded: LoadedVersion,
    path: str | Path,
    k: int,
    modality: str | None = None,
    filters: Filters = NO_FILTERS,
) -> ExampleAnswer:
    """The items nearest a media file among those that pass ``modality`` and ``filters``."""
    k, modality = checked_k(k), checked_modality(modality)
    if filters.source and filters.source not in loaded.sources:
        known = ", ".join(sorted(loaded.sources)) or "none"
        raise QueryError(f"unknown source {filters.source!r} in {loaded.version} ({known})", 404)
    kind, vector = embed_example(loaded, path)
    if modality is not None and SPACE_OF_MODALITY[modality] != SPACE_OF_MODALITY[kind]:
        raise QueryError(f"a {kind} cannot be compared with {modality} items (another space)")
    return by_embedding(loaded, vector, kind, k, [modality] if modality else None, filters)


def by_embedding(
    loaded: LoadedVersion,
    vector: np.ndarray,
    modality: str,
    k: int,
    among: list[str] | None = None,
    filters: Filters = NO_FILTERS,
) -> ExampleAnswer:
    """Items nearest an item-space ``vector`` of ``modality`` through the decoder's
    item-memory path: among the kinds sharing its space (another encoder's embeddings do not
    compare), or ``among``, that pass ``filters``. RANKED candidates at least are ranked (the
    calibration's view), ordered by relevance, exact duplicates first, and cut to ``k``."""
    rows, trie = items_among(loaded, among or sorted(kinds_sharing_spaces({modality})), filters)
    cal = example_calibration(loaded)
    if not len(rows):
        return ExampleAnswer(modality, [], cal is not None, None)
    hits = candidates(loaded, vector[None], rows, trie, max(k, RANKED))[0]
    results = [loaded.result(row, score) for row, score in hits]
    same = duplicates(loaded, vector, [row for row, _ in hits])
    for r, dup in zip(results, same):
        r["relevance"] = 1.0 if dup else relevance(cal, r["score"], r["modality"])
    order = sorted(range(len(results)), key=lambda n: (not same[n], -results[n]["relevance"]))
    results = [results[n] for n in order][:k]
    low = None if cal is None else results[0]["relevance"] < cal.threshold
    return ExampleAnswer(modality, results, cal is not None, low)


def candidates(
    loaded: LoadedVersion, vectors: np.ndarray, rows: np.ndarray, trie: Trie, n: int
) -> list[list[tuple[int, float]]]:
    """Per vector (Q, D): its ``n`` best items among ``rows`` as (row, score), best first."""
    model = loaded.model
    found = search_by_embedding(
        model.decoder, vectors, trie, DEFAULT_BEAM, min(n, len(rows)), device=model.device
    )
    return [[(int(rows[i]), s) for i, s in row] for row in found]


def duplicates(loaded: LoadedVersion, vector: np.ndarray, rows: list[int]) -> list[bool]:
    """Per row: whether its item's embedding is the query's (cosine >= DUPLICATE_COSINE)."""
    if not rows:
        return []
    emb = loaded.model.item_emb[rows]
    norms = np.linalg.norm(emb, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
    cos = emb @ np.asarray(vector, np.float32) / np.maximum(norms, 1e-12)
    return [bool(c >= DUPLICATE_COSINE) for c in cos]


def relevance(cal: Calibration | None, score: float, modality: str) -> float:
    """A result's relevance in [0, 1]: calibrated, or by default the decoder's own
    probability of the result (its score is a log-probability)."""
    if cal is None:
        return round(min(1.0, math.exp(min(score, 0.0))), 4)
    return cal.relevance(score, modality)


def items_among(
    loaded: LoadedVersion, kinds: list[str], filters: Filters = NO_FILTERS
) -> tuple[np.ndarray, Trie | None]:
    """The rows of the items of ``kinds`` that pass ``filters`` and a trie of their IDs (None
    when none pass); a filtered set of several kinds is kept among the version's subsets."""
    if len(kinds) == 1:
        return loaded.subset(kinds[0], filters)
    if not filters.active:
        return loaded.subset_of(kinds)
    key = (EXAMPLE_PATH, tuple(sorted(kinds)), filters)
    with loaded.cache.lock:
        if key not in loaded.cache.subsets:
            rows, ids = loaded.subset_of(kinds)[0], loaded.model.item_ids
            keep = np.array([r for r in rows if filters.keeps(loaded.items[ids[r]])], np.int64)
            trie = loaded.model.trie_of(keep) if len(keep) else None
            loaded.cache.subsets[key] = (keep, trie)
        return loaded.cache.subsets[key]


def example_calibration(loaded: LoadedVersion) -> Calibration | None:
    """The by-example calibration of ``loaded`` (None: the default), once per version."""
    return kept_or_fit(loaded, EXAMPLE_PATH, lambda: fit_example_calibration(loaded))


def fit_example_calibration(
    loaded: LoadedVersion, sample: int = SELF_QUERIES, seed: int = 0
) -> Calibration | None:
    """Platt scaling of the by-example path on the version's own items: a seeded sample of
    ``sample`` items, each searched (RANKED results, as served) by its own embedding, its own
    item the right answer. None below MIN_SELF_QUERIES items."""
    n = loaded.n_items
    if n < MIN_SELF_QUERIES:
        return None
    ids, items = loaded.model.item_ids, loaded.items
    kind = [items[i]["modality"] for i in ids]
    queries = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    by_space: dict[tuple[str, ...], list[int]] = {}
    for q in queries.tolist():
        by_space.setdefault(tuple(sorted(kinds_sharing_spaces({kind[q]}))), []).append(q)
    ranked = []
    for kinds, mine in by_space.items():
        rows, trie = loaded.subset_of(list(kinds))
        hits = candidates(loaded, loaded.model.item_emb[mine], rows, trie, RANKED)
        ranked += [[(s, kind[r], r == q) for r, s in row] for row, q in zip(hits, mine)]
    return fit_calibration(ranked)


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
