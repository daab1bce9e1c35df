"""Pixels of the scenes world's pictures and videos (numpy only; shapes drawn in their box)."""

from __future__ import annotations

import numpy as np

from ace_core.world import vocab
from ace_core.world.scenes import Picture, Thing, Video

IMAGE_SIZE = 224
VIDEO_SIZE = 96
VIDEO_FRAMES = 16
RADIUS = {"small": 0.065, "large": 0.12}  # of the picture's side


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Which offsets (dx, dy) from the centre fall inside ``shape`` of radius ``r``."""
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        arm = r * 0.3
        return ((np.abs(dx) <= arm) | (np.abs(dy) <= arm)) & (np.maximum(abs(dx), abs(dy)) <= r)
    if shape == "diamond":
        return np.abs(dx) * 1.3 + np.abs(dy) <= r
    ang = np.arctan2(dy, dx)  # star
    return np.sqrt(dx**2 + dy**2) <= r * (0.5 + 0.5 * np.cos(2.5 * (ang + np.pi / 2)) ** 2)


def paint(img: np.ndarray, shape: str, cx: float, cy: float, r: float, rgb) -> None:
    """Fill ``shape`` centred at (cx, cy) in place; only its bounding box is computed."""
    size_y, size_x = img.shape[:2]
    x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size_x)
    y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size_y)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    mask = shape_mask(shape, xx - cx, yy - cy, r)
    img[y0:y1, x0:x1][mask] = rgb


def background(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 128.0, np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    s = size / 224
    if kind == "striped":
        img += 50 * ((xx // max(1, int(12 * s))) % 2)[..., None] - 25
    elif kind == "checkered":
        c = max(1, int(16 * s))
        img += 50 * ((xx // c + yy // c) % 2)[..., None] - 25
    elif kind == "dotted":
        step = int(14 * s)
        dots = ((xx % step - step / 2) ** 2 + (yy % step - step / 2) ** 2) <= (step / 4) ** 2
        img += 60 * dots[..., None] - 15
    elif kind == "noisy":
        img += rng.normal(0, 30, (size, size, 1))
    elif kind == "gradient":
        img += (xx / size * 110 - 55)[..., None]
    return img


def render_picture(p: Picture, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 (size, size, 3): each object in its grid cell, position and size jittered."""
    img = background(p.background, rng, size)
    for t in p.things:
        col, row = vocab.CELLS[t.cell][0]
        cx, cy = (np.array([col, row]) * 2 + 1) / 6 + rng.uniform(-0.03, 0.03, 2)
        r = RADIUS[t.size] * size * rng.uniform(0.9, 1.1)
        paint(img, t.shape, cx * size, cy * size, r, vocab.COLORS[t.color][0])
    return np.clip(img, 0, 255).astype(np.uint8)


def _track(t: Thing, start: np.ndarray, size: int, frames: int) -> np.ndarray:
    """(frames, 2) centres: a straight line through ``start`` along the direction."""
    step = vocab.SPEEDS[t.speed][0] * size / frames
    d = np.array(vocab.DIRECTIONS[t.direction][0], np.float64)
    k = np.arange(frames)[:, None] - (frames - 1) / 2
    return start + d * step * k


def render_video(
    v: Video, rng: np.random.Generator, size: int = VIDEO_SIZE, frames: int = VIDEO_FRAMES
) -> np.ndarray:
    """uint8 (frames, size, size, 3): each object crossing its own third of the frame."""
    cells = rng.choice(9, size=len(v.things), replace=False)
    tracks = []
    for t, cell in zip(v.things, cells):
        start = (np.array([cell % 3, cell // 3]) * 2 + 1) / 6 * size + rng.uniform(-3, 3, 2)
        r = RADIUS[t.size] * size * 1.2
        tracks.append((t, _track(t, start, size, frames), r))
    out = np.empty((frames, size, size, 3), np.uint8)
    bg = vocab.VIDEO_BACKGROUNDS[v.background][0]
    for k in range(frames):
        frame = np.empty((size, size, 3), np.float32)
        frame[:] = bg
        for t, track, r in tracks:
            paint(frame, t.shape, track[k, 0], track[k, 1], r, vocab.COLORS[t.color][0])
        out[k] = frame.astype(np.uint8)
    return out
