"""A deterministic synthetic multimodal corpus with compositional content and varied captions.

- images: 1-3 shapes of one colour at a position, over a textured background;
- audio: tones, chords, sweeps, rhythms and noise colours at a pitch register and loudness;
- video: a shape moving in a direction at a speed.
Every item gets at least 5 captions from different templates; the same seed gives the same
bytes and captions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# H.264 options under which one seed writes the same bytes every time: one thread, and no
# x264 assembly (with it, some videos came out different on a second write: 2 to 7 of 25;
# none of 250 writes without it). 3x slower, about 30 ms a small video.
X264_DETERMINISTIC = {"preset": "veryfast", "crf": "18", "threads": "1", "x264-params": "asm=0"}


def write_mp4(path: Path, frames: np.ndarray) -> None:
    """(n, h, w, 3) uint8 frames -> an H.264 MP4 at 8 fps (browsers play it as it is), the
    same bytes for the same frames."""
    import av

    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=8)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(X264_DETERMINISTIC)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star")
POSITIONS = {
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "center": (0.5, 0.5),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
}
TEXTURES = ("plain", "striped", "checkered", "noisy")
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
SOUNDS = ("tone", "chord", "rising sweep", "falling sweep", "rhythm", "noise")
REGISTERS = {"low": 110.0, "middle": 330.0, "high": 990.0}
NOISES = {"white": 0.0, "pink": 1.0, "brown": 2.0}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS = {"slowly": 0.25, "quickly": 0.7}

SR = 48_000
IMAGE_SIZE = 224
VIDEO_SIZE = 96
VIDEO_FRAMES = 16


@dataclass(frozen=True)
class CorpusCounts:
    images: int = 48
    audio: int = 24
    videos: int = 16


def write_sample_corpus(
    out: str | Path, *, seed: int = 0, counts: CorpusCounts = CorpusCounts()
) -> dict:
    """Write the corpus under ``out`` (created); returns counts. Deterministic in ``seed``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(counts.images):
        records.append(_write_image(out / "images" / f"img_{i:04d}.png", rng))
    for i in range(counts.audio):
        records.append(_write_audio(out / "audio" / f"snd_{i:04d}.wav", rng))
    for i in range(counts.videos):
        records.append(_write_video(out / "video" / f"vid_{i:04d}.mp4", rng))
    with open(out / "captions.jsonl", "w") as f:
        for path, caps in records:
            f.write(json.dumps({"path": path.relative_to(out).as_posix(), "captions": caps}) + "\n")
    return {
        "images": counts.images,
        "audio": counts.audio,
        "videos": counts.videos,
        "captions": sum(len(c) for _, c in records),
        "path": str(out),
    }


def _pick(rng: np.random.Generator, options):
    keys = list(options)
    return keys[int(rng.integers(len(keys)))]


# ----------------------------------------------------------------------------- images


def _shape_mask(shape: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    ang = np.arctan2(dy, dx)
    rad = np.sqrt(dx**2 + dy**2)
    return rad <= r * (0.55 + 0.45 * np.cos(5 * ang) ** 2)  # star


def _background(texture: str, rng: np.random.Generator, size: int) -> np.ndarray:
    base = np.full((size, size, 3), 128, np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    if texture == "striped":
        base += 60 * ((xx // 12) % 2)[..., None]
    elif texture == "checkered":
        base += 60 * (((xx // 16) + (yy // 16)) % 2)[..., None]
    elif texture == "noisy":
        base += rng.normal(0, 35, (size, size, 1))
    return base


def _write_image(path: Path, rng: np.random.Generator):
    from PIL import Image

    pixels, caps = synth_image(rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, optimize=False)
    return path, caps


def synth_image(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One picture (uint8 (224, 224, 3)) and its captions, drawn from ``rng``."""
    color, shape, pos, texture = (
        _pick(rng, COLORS),
        _pick(rng, SHAPES),
        _pick(rng, POSITIONS),
        _pick(rng, TEXTURES),
    )
    count = int(rng.integers(1, 4))
    img = _background(texture, rng, IMAGE_SIZE)
    px, py = np.array(POSITIONS[pos]) + rng.uniform(-0.03, 0.03, 2)  # jitter: no two alike
    r = IMAGE_SIZE * (0.14 if count == 1 else 0.08) * rng.uniform(0.9, 1.1)
    for k in range(count):
        off = (k - (count - 1) / 2) * r * 2.3
        mask = _shape_mask(shape, px * IMAGE_SIZE + off, py * IMAGE_SIZE, r, IMAGE_SIZE)
        img[mask] = COLORS[color]
    n = COUNT_WORDS[count]
    s = shape if count == 1 else shape + "s"
    caps = [
        f"{n} {color} {s} in the {pos} on a {texture} background",
        f"a {texture} picture with {n} {color} {s} at the {pos}",
        f"{color} {s}, {n} of them, placed {pos}",
        f"an image showing {n} {s} coloured {color} near the {pos}",
        f"{pos}: {n} {color} {s} over a {texture} texture",
        f"there {'is' if count == 1 else 'are'} {n} {color} {s} on the {pos} side",
    ]
    return np.clip(img, 0, 255).astype(np.uint8), caps


# ----------------------------------------------------------------------------- audio


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return x / (np.abs(x).max() + 1e-9)


def _write_audio(path: Path, rng: np.random.Generator):
    import soundfile as sf

    samples, caps = synth_audio(rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SR, subtype="PCM_16")
    return path, caps


def synth_audio(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One clip (float32 mono at 48 kHz, 1.5-3 s) and its captions, drawn from ``rng``."""
    sound, register = _pick(rng, SOUNDS), _pick(rng, REGISTERS)
    loud = bool(rng.integers(2))
    dur = float(rng.uniform(1.5, 3.0))
    t = np.arange(int(dur * SR)) / SR
    f0 = REGISTERS[register]
    noise = None
    if sound == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif sound == "chord":
        x = sum(np.sin(2 * np.pi * f0 * m * t) for m in (1.0, 1.26, 1.5)) / 3
    elif sound in ("rising sweep", "falling sweep"):
        a, b = (f0, f0 * 4) if sound == "rising sweep" else (f0 * 4, f0)
        freq = a * (b / a) ** (t / dur)
        x = np.sin(2 * np.pi * np.cumsum(freq) / SR)
    elif sound == "rhythm":
        beat = (np.mod(t, 0.25) < 0.06).astype(np.float64)
        x = beat * np.sin(2 * np.pi * f0 * t)
    else:
        noise = _pick(rng, NOISES)
        x = _coloured_noise(rng, t.size, NOISES[noise])
    x = (0.8 if loud else 0.2) * x
    level = "loud" if loud else "quiet"
    what = f"{noise} noise" if noise else f"{register} {sound}"
    caps = [
        f"a {level} {what}",
        f"the sound of a {what}, {level}",
        f"{level} audio of a {what} lasting about {dur:.0f} seconds",
        f"a recording with a {what} played {level}ly",
        f"{what} at a {level} volume",
    ]
    if noise:
        caps.append(f"{level} {noise} noise hiss")
    else:
        caps.append(f"a {sound} in the {register} register, {level}")
    return x.astype(np.float32), caps


# ----------------------------------------------------------------------------- video


def _write_video(path: Path, rng: np.random.Generator):
    color, shape = _pick(rng, COLORS), _pick(rng, SHAPES)
    direction, speed = _pick(rng, DIRECTIONS), _pick(rng, SPEEDS)
    dx, dy = DIRECTIONS[direction]
    step = SPEEDS[speed] * VIDEO_SIZE / VIDEO_FRAMES
    start = VIDEO_SIZE / 2 - np.array([dx, dy]) * step * VIDEO_FRAMES / 2 + rng.uniform(-6, 6, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.full((VIDEO_FRAMES, VIDEO_SIZE, VIDEO_SIZE, 3), 90, np.uint8)
    for k, frame in enumerate(frames):
        cx, cy = start + np.array([dx, dy]) * step * k
        frame[_shape_mask(shape, cx, cy, VIDEO_SIZE * 0.12, VIDEO_SIZE)] = COLORS[color]
    write_mp4(path, frames)
    caps = [
        f"a {color} {shape} moving {direction} {speed}",
        f"video of a {shape} in {color} that travels {direction}",
        f"a {color} {shape} {speed} slides to the {direction}"
        if dx
        else f"a {color} {shape} {speed} drifts {direction}",
        f"{speed} moving {color} {shape}, heading {direction}",
        f"clip: {color} {shape} goes {direction} {speed}",
    ]
    return path, caps
