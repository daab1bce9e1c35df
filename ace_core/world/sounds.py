"""Samples of the scenes world's sounds: events in sequence, under a loudness envelope."""

from __future__ import annotations

import numpy as np

from ace_core.world import vocab
from ace_core.world.scenes import Event, Sound

SR = 48_000
EVENT_SECONDS = {"slow": (0.55, 0.2), "fast": (0.28, 0.08)}  # (event, gap)
LEVEL = {"quiet": 0.25, "loud": 0.85}


def _voice(f: np.ndarray, timbre: str) -> np.ndarray:
    """A waveform of instantaneous frequency ``f`` (Hz per sample): sine, or odd harmonics."""
    phase = 2 * np.pi * np.cumsum(f) / SR
    if timbre == "pure":
        return np.sin(phase)
    return sum(np.sin(k * phase) / k for k in (1, 3, 5, 7)) * 0.8


def _noise(rng: np.random.Generator, n: int, register: str, timbre: str) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    centre = vocab.REGISTERS[register][0] * 2
    band = np.exp(-0.5 * (np.log(np.maximum(freqs, 1.0) / centre) / 0.5) ** 2)
    x = np.fft.irfft(spec * band, n)
    x /= np.abs(x).max() + 1e-9
    if timbre == "bright":  # crackle: gated in short bursts
        x *= (rng.random(n // 480 + 1) < 0.5).repeat(480)[:n]
    return x


def event_samples(e: Event, seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = vocab.REGISTERS[e.register][0] * rng.uniform(0.97, 1.03)
    if e.kind == "noise":
        x = _noise(rng, n, e.register, e.timbre)
    elif e.kind == "chord":
        x = sum(_voice(np.full(n, f0 * m), e.timbre) for m in (1.0, 1.26, 1.5)) / 3
    elif e.kind in ("rising sweep", "falling sweep"):
        a, b = (f0, f0 * 2.5) if e.kind == "rising sweep" else (f0 * 2.5, f0)
        x = _voice(a * (b / a) ** (t / seconds), e.timbre)
    else:
        x = _voice(np.full(n, f0), e.timbre)
        if e.kind == "pulses":
            x *= np.mod(t, 0.09) < 0.045
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # no clicks
    return LEVEL[e.loudness] * x * ramp


def envelope(kind: str, n: int) -> np.ndarray:
    u = np.linspace(0, 1, n)
    if kind == "fading in":
        return 0.15 + 0.85 * u
    if kind == "fading out":
        return 1.0 - 0.85 * u
    if kind == "swelling":
        return 0.15 + 0.85 * np.sin(np.pi * u)
    return np.ones(n)


def render_sound(s: Sound, rng: np.random.Generator) -> np.ndarray:
    """float32 mono at 48 kHz: the events one after another, then the envelope."""
    seconds, gap = EVENT_SECONDS[s.tempo]
    parts = []
    for e in s.events:
        parts += [event_samples(e, seconds * rng.uniform(0.9, 1.1), rng), np.zeros(int(gap * SR))]
    x = np.concatenate(parts)
    return (x * envelope(s.envelope, x.size)).astype(np.float32)
