"""Audio decoding: WAV/FLAC/OGG via soundfile, everything else (MP3, M4A, Opus, WebM, ...) via
PyAV; mixed down to mono and resampled to the target rate (48 kHz for CLAP), with memory
bounded whatever the file's length."""

from __future__ import annotations

import logging

import numpy as np

from ace_core.media.decoding import Decoded, DecodeError, _one_line

logger = logging.getLogger(__name__)

MIN_AUDIO_SECONDS = 0.1  # a shorter clip is a click, not a sound to search for

_SOUNDFILE_OK = (b"RIFF", b"fLaC", b"OggS", b"FORM")
AUDIO_WINDOW_S = 10.0  # the audio encoders' window (CLAP: 10 s at 48 kHz)
KEPT_WINDOWS = 64  # a longer file keeps this many evenly spread windows (encoders use <= 64)
MAX_STREAMED_AUDIO_S = 1800.0  # compressed streams (PyAV): the first 30 minutes


def decode_audio(path: str, *, sample_rate: int = 48_000) -> Decoded:
    """Decode to float32 mono at ``sample_rate``; empty or silent-length audio fails."""
    with open(path, "rb") as f:
        head = f.read(4)
    samples, sr, duration = None, None, None
    if head in _SOUNDFILE_OK:
        try:
            samples, sr, duration = _read_soundfile(path)
        except Exception as e:  # noqa: BLE001 - fall back to PyAV for anything soundfile rejects
            logger.debug("soundfile failed on %s (%s); trying PyAV", path, e)
    if samples is None:
        try:
            samples, sr, duration = _read_pyav_audio(path)
        except DecodeError:
            raise
        except Exception as e:  # noqa: BLE001
            raise DecodeError(_one_line(e)) from e
    if samples.size == 0:
        raise DecodeError("empty audio: the file holds no samples")
    if not np.isfinite(samples).all():
        raise DecodeError("audio holds NaN or infinite samples")
    if duration < MIN_AUDIO_SECONDS:
        raise DecodeError(
            f"audio too short to embed: {duration:.4f} s (at least {MIN_AUDIO_SECONDS} s)"
        )
    if sr != sample_rate:
        import soxr

        samples = soxr.resample(samples, sr, sample_rate).astype(np.float32)
    return Decoded(
        np.ascontiguousarray(samples, dtype=np.float32),
        {"duration_s": duration, "sample_rate": int(sr)},
    )


def _read_soundfile(path: str) -> tuple[np.ndarray, int, float]:
    """Mono float32 at the file's rate, read block by block (memory: the mono signal, never
    the interleaved channels). A clip longer than KEPT_WINDOWS windows keeps only that many
    windows, evenly spread (the encoder pools at most a few of them): memory stays bounded
    whatever the length (a one-hour WAV is about 100 MB, not gigabytes)."""
    import soundfile as sf

    info = sf.info(path)
    sr, n = int(info.samplerate), int(info.frames)
    window = int(AUDIO_WINDOW_S * sr)
    if n <= window * KEPT_WINDOWS:
        blocks = sf.blocks(path, blocksize=window, dtype="float32", always_2d=True)
        parts = [b.mean(axis=1) for b in blocks]
    else:
        starts = np.linspace(0, n - window, KEPT_WINDOWS).astype(np.int64)
        parts = [
            sf.read(path, start=int(s), frames=window, dtype="float32", always_2d=True)[0].mean(1)
            for s in starts
        ]
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return data.astype(np.float32, copy=False), sr, n / sr if sr else 0.0


def _read_pyav_audio(path: str) -> tuple[np.ndarray, int, float]:
    """Mono float32 at the stream's rate, decoded frame by frame; at most
    MAX_STREAMED_AUDIO_S seconds are kept (the rest of a longer stream is not decoded)."""
    import av

    try:
        container = av.open(path)
    except Exception as e:  # noqa: BLE001
        raise DecodeError(_one_line(e)) from e
    with container:
        if not container.streams.audio:
            raise DecodeError("no audio stream")
        stream = container.streams.audio[0]
        sr = stream.rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks, kept, limit = [], 0, int(MAX_STREAMED_AUDIO_S * sr)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                kept += chunks[-1].size
            if kept >= limit:
                break
        else:
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        known = container.duration / 1e6 if container.duration else None
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    duration = max(known or 0.0, data.size / sr) if kept >= limit else data.size / sr
    return data.astype(np.float32, copy=False), int(sr), duration
