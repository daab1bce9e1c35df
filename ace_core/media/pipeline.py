"""Batched, overlapped embedding: decode in background threads while the model computes.

reader (the file list) -> mapper (decode + encoder.prepare, in a thread pool, bounded look-ahead)
-> batcher (per modality) -> encoder.embed (main thread, inference_mode, fp16 autocast on CUDA)
-> results yielded in completion order. A bad file becomes a failed result with its reason;
it never stops the run.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ace_core.media.decoding import Decoded, DecodeError
from ace_core.media.discovery import MediaFile
from ace_core.media.embed_config import EmbedConfig, PipelineConfig
from ace_core.media.encoders import (
    Encoder,
)
from ace_core.media.modalities import KINDS, media_kind

logger = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """Outcome for one file: an embedding, or an error with its one-line reason."""

    file: MediaFile
    embedding: np.ndarray | None  # float32 (dim,), L2-normalised; None when failed
    meta: dict[str, Any] = field(default_factory=dict)  # width/height/duration_s/...
    error: str | None = None


Decoder = Callable[[MediaFile], Decoded]


def default_decoders(config: PipelineConfig, image_side: int | None = None) -> dict[str, Decoder]:
    """Decoders per modality; ``image_side``: the image model's input side (JPEG draft)."""
    return {
        name: functools.partial(kind.decode, config=config, side=image_side)
        for name, kind in KINDS.items()
    }


def _decode_and_prepare(f: MediaFile, decoder: Decoder, encoder: Encoder):
    """Worker body: (prepared input, meta, error)."""
    try:
        decoded = decoder(f)
        return encoder.prepare(decoded), decoded.meta, None
    except DecodeError as e:
        return None, {}, str(e)
    except Exception as e:  # noqa: BLE001 - a bad file must never stop the run
        logger.debug("prepare failed for %s", f.path, exc_info=True)
        return None, {}, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:240]


def embed_files(
    files: Iterable[MediaFile],
    encoders: Mapping[str, Encoder],
    config: PipelineConfig = PipelineConfig(),
    *,
    decoders: Mapping[str, Decoder] | None = None,
    on_result: Callable[[EmbedResult], None] | None = None,
) -> Iterator[EmbedResult]:
    """Embed ``files``; yields one EmbedResult per file (order: by completion)."""
    image_side = getattr(encoders.get("image"), "input_side", None)
    decoders = dict(decoders or default_decoders(config, image_side))
    window = max(1, config.batch_size * config.prefetch_batches)
    pending: deque[tuple[MediaFile, cf.Future]] = deque()
    buffers: dict[str, list[tuple[MediaFile, Any, dict]]] = {m: [] for m in encoders}
    it = iter(files)
    with cf.ThreadPoolExecutor(config.workers, thread_name_prefix="decode") as pool:

        def fill() -> None:
            while len(pending) < window:
                f = next(it, None)
                if f is None:
                    return
                if f.modality not in encoders:
                    fut: cf.Future = cf.Future()
                    fut.set_result((None, {}, f"no encoder for modality {f.modality}"))
                else:
                    fut = pool.submit(
                        _decode_and_prepare, f, decoders[f.modality], encoders[f.modality]
                    )
                pending.append((f, fut))

        fill()
        while pending:
            f, fut = pending.popleft()
            prepared, meta, error = fut.result()
            fill()  # keep the workers busy while the model runs below
            if error is not None:
                yield _emit(EmbedResult(f, None, meta, error), on_result)
                continue
            buf = buffers[f.modality]
            buf.append((f, prepared, meta))
            if len(buf) >= config.batch_size:
                yield from _flush(buf, encoders[f.modality], on_result)
        for modality, buf in buffers.items():
            if buf:
                yield from _flush(buf, encoders[modality], on_result)


def _emit(r: EmbedResult, on_result) -> EmbedResult:
    if on_result is not None:
        on_result(r)
    return r


def _flush(buf: list, encoder: Encoder, on_result) -> Iterator[EmbedResult]:
    """Embed a batch; if the batch fails, embed item by item to isolate the bad one."""
    batch = list(buf)
    buf.clear()
    try:
        emb = _checked(encoder.embed([p for _, p, _ in batch]), len(batch), encoder.dim)
    except Exception as e:  # noqa: BLE001
        if len(batch) == 1:
            f, _, meta = batch[0]
            yield _emit(
                EmbedResult(
                    f,
                    None,
                    meta,
                    f"encoder failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                ),
                on_result,
            )
            return
        logger.debug("batch of %d failed (%s); retrying one by one", len(batch), e)
        for item in batch:
            yield from _flush([item], encoder, on_result)
        return
    for (f, _, meta), row in zip(batch, emb):
        if not np.isfinite(row).all():
            yield _emit(
                EmbedResult(f, None, meta, "encoder produced a non-finite embedding"), on_result
            )
        else:
            yield _emit(EmbedResult(f, row, meta), on_result)


def _checked(emb: np.ndarray, n: int, dim: int) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    if emb.shape != (n, dim):
        raise ValueError(f"encoder returned shape {emb.shape}, expected {(n, dim)}")
    return emb


def embed_prepared(encoder: Encoder, prepared: Sequence[Any], batch_size: int) -> np.ndarray:
    """Bare model throughput helper: embed already-prepared inputs in batches."""
    out = [encoder.embed(prepared[i : i + batch_size]) for i in range(0, len(prepared), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, encoder.dim), np.float32)


def build_encoder(modality: str, config: EmbedConfig, *, device=None, shared=None) -> Encoder:
    """Build the encoder of one modality; a kind that shares another's item space (video)
    wraps ``shared``, that space's encoder, when given."""
    return media_kind(modality).build_encoder(config, device, shared)
