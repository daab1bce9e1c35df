"""The store's text features: the frozen text encoder's features of every caption a build
read, computed once per encoder and reused by content hash (re-index, ingest, the dense
baseline), memory-mapped so a 100k-item build holds none of them in its own memory.

STORE/staging/text-features/<encoder>-<spec>/   (one folder per encoder weights and FeatureSpec)
  part-<id>.f16    the texts' blocks end to end: (tokens, S, H) float16, memory-mapped
  part-<id>.npz    hashes (n, 32) uint8 (sha256 of each text), lengths (n,), pooled (n, H)
  part-<id>.json   counts and the sha256 of both files; written last, so a part without it
                   is unfinished and ignored

A part whose files do not match their recorded sha256 (checked once per process) is deleted
and its texts computed again: a damaged feature file is never trusted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ace_core.media.discovery import sha256_file
from ace_core.retrieval.text_features import (
    FeatureSpec,
    TextFeatures,
    check_precision,
    encode_texts,
)
from ace_index.storage.store.disk import write_durably

logger = logging.getLogger(__name__)

PART_TEXTS = 50_000  # texts per part written at once
_VERIFIED: set[str] = set()  # parts checked against their sha256 in this process


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8: the sha256 of each text's UTF-8 bytes."""
    out = np.zeros((len(texts), 32), np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(hashlib.sha256(t.encode("utf-8")).digest(), np.uint8)
    return out


def _missing(keys: list[bytes], where: dict) -> list[int]:
    """The first index of each key not in ``where`` (a text listed twice is encoded once)."""
    out, seen = [], set()
    for i, k in enumerate(keys):
        if k not in where and k not in seen:
            seen.add(k)
            out.append(i)
    return out


class TextFeatureStore:
    """One folder of parts: the features of one encoder under one FeatureSpec."""

    def __init__(self, folder: str | os.PathLike, encoder, tokenizer, spec: FeatureSpec):
        check_precision(encoder, spec)  # stored features are read only under their own spec
        self.folder, self.spec = Path(folder), spec
        self.encoder, self.tokenizer = encoder, tokenizer

    def features(
        self,
        texts: Sequence[str],
        *,
        device="cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> TextFeatures:
        """Features of ``texts`` (in order): stored ones memory-mapped, the rest computed
        now and stored. ``progress(done, total)`` as texts missing from the store are
        encoded."""
        hashes = text_hashes(texts)
        parts, where = self._index()
        keys = [h.tobytes() for h in hashes]
        missing = _missing(keys, where)
        if missing:
            logger.info(
                "text features: %d of %d texts to encode, %d stored",
                len(missing),
                len(texts),
                len(texts) - len(missing),
            )
            self._compute([texts[i] for i in missing], hashes[missing], device, progress)
            parts, where = self._index()
        else:
            logger.info("text features: all %d texts stored", len(texts))
        return self._view(parts, where, keys, device)

    def _view(self, parts, where, keys, device) -> TextFeatures:
        found = np.array([where[k] for k in keys], np.int64).reshape(-1, 3)
        pooled = np.zeros((len(keys), self.encoder.hidden), np.float32)
        for p, part in enumerate(parts):
            mine = found[:, 0] == p
            pooled[mine] = part["pooled"][found[mine, 2]]
        lengths = np.array([parts[p]["lengths"][r] for p, _, r in found.tolist()], np.int64)
        blocks = [part["blocks"] for part in parts]
        return TextFeatures(blocks, found[:, 0], found[:, 1], lengths, pooled, device=device)

    def _index(self) -> tuple[list[dict], dict[bytes, tuple[int, int, int]]]:
        """The usable parts, and each stored text's (part, first token, row)."""
        parts, where = [], {}
        for meta_file in sorted(self.folder.glob("part-*.json")):
            part = self._open(meta_file)
            if part is None:
                continue
            p = len(parts)
            parts.append(part)
            offsets = np.cumsum(part["lengths"]) - part["lengths"]
            for r, (h, off) in enumerate(zip(part["hashes"], offsets.tolist())):
                where.setdefault(h.tobytes(), (p, off, r))
        return parts, where

    def _open(self, meta_file: Path) -> dict | None:
        """A part's arrays, after checking its files once per process; a damaged part is
        deleted (its texts are then encoded again)."""
        stem = meta_file.with_suffix("")
        blocks, arrays = stem.with_suffix(".f16"), stem.with_suffix(".npz")
        try:
            meta = json.loads(meta_file.read_text())
            if str(stem) not in _VERIFIED:
                for f, key in ((blocks, "f16"), (arrays, "npz")):
                    if sha256_file(f) != meta["sha256"][key]:
                        raise ValueError(f"{f.name} does not match its recorded sha256")
                _VERIFIED.add(str(stem))
            with np.load(arrays) as z:
                hashes, lengths, pooled = z["hashes"], z["lengths"], z["pooled"]
            shape = (int(meta["tokens"]), int(meta["layers"]), int(meta["hidden"]))
            mapped = np.memmap(blocks, np.float16, "r", shape=shape) if shape[0] else None
        except (OSError, ValueError, KeyError) as e:
            logger.warning(
                "text features: %s is damaged (%s); its texts are encoded again",
                stem.name,
                str(e).splitlines()[0][:160],
            )
            for f in (meta_file, blocks, arrays):
                f.unlink(missing_ok=True)
            return None
        return {"blocks": mapped, "hashes": hashes, "lengths": lengths, "pooled": pooled}

    def _compute(self, texts, hashes, device, progress) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(texts), PART_TEXTS):
            chunk = slice(start, start + PART_TEXTS)
            self._write_part(texts[chunk], hashes[chunk], device, progress, start, len(texts))

    def _write_part(self, texts, hashes, device, progress, done: int, total: int) -> None:
        """Encode ``texts`` into one part; blocks are written in the order they are encoded
        (by length), the part's hashes in the same order."""
        stem = self.folder / f"part-{uuid.uuid4().hex[:16]}"
        tmp = stem.with_suffix(".f16.tmp")
        order, lengths, pooled, tokens = [], [], [], 0
        try:
            with open(tmp, "wb") as out:
                batches = encode_texts(
                    self.encoder, self.tokenizer, texts, self.spec, device=device
                )
                for idx, blocks, p in batches:
                    for b in blocks:
                        out.write(np.ascontiguousarray(b, np.float16).tobytes())
                        lengths.append(len(b))
                        tokens += len(b)
                    order.append(idx)
                    pooled.append(p.astype(np.float16))
                    done += len(blocks)
                    if progress:
                        progress(done, total)
            os.replace(tmp, stem.with_suffix(".f16"))
            self._finish_part(stem, hashes[np.concatenate(order)], lengths, pooled, tokens)
        finally:
            tmp.unlink(missing_ok=True)

    def _finish_part(self, stem: Path, hashes, lengths, pooled, tokens: int) -> None:
        arrays = stem.with_suffix(".npz")
        with open(arrays, "wb") as f:
            np.savez(
                f,
                hashes=hashes,
                lengths=np.asarray(lengths, np.int32),
                pooled=np.concatenate(pooled),
            )
        meta = {
            "texts": len(lengths),
            "tokens": tokens,
            "layers": self.encoder.n_layers,
            "hidden": self.encoder.hidden,
            "sha256": {"f16": sha256_file(stem.with_suffix(".f16")), "npz": sha256_file(arrays)},
        }
        write_durably(stem.with_suffix(".json"), json.dumps(meta))
        _VERIFIED.add(str(stem))


def feature_source(staging: str | os.PathLike, encoder_path: str, progress=None):
    """A fit's feature source (ace_core.retrieval.fit.FeatureSource) over the store's text
    features: ``staging/text-features/<encoder weights' sha256>-<spec>/``."""
    key = encoder_key(encoder_path)

    def source(texts: list[str], model) -> TextFeatures:
        folder = Path(staging) / "text-features" / f"{key}-{model.feature_spec.key}"
        store = TextFeatureStore(folder, model.encoder, model.tokenizer, model.feature_spec)
        return store.features(texts, device=model.device, progress=progress)

    return source


@functools.lru_cache(maxsize=8)
def encoder_key(encoder_path: str) -> str:
    """16 hex digits of the encoder's weights file's sha256 (of its path where it has none)."""
    from ace_index.storage.formats.retriever import encoder_weights_file

    weights = encoder_weights_file(encoder_path)
    digest = sha256_file(weights) if weights else hashlib.sha256(encoder_path.encode()).hexdigest()
    return digest[:16]
