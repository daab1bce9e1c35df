"""A scenes-world corpus streamed to disk, and how distinct its items are.

Item ``i`` of a modality is drawn from its own generator (``scenes.item_rng``): its
description, then its captions, then the jitter of its rendering. A corpus is written one item
at a time and ``captions.jsonl`` line by line, so memory stays flat in the corpus size.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ace_core.synth import write_mp4
from ace_core.world.captions import captions
from ace_core.world.pictures import render_picture, render_video
from ace_core.world.scenes import DRAW, item_rng
from ace_core.world.sounds import SR, render_sound

FOLDERS = {
    "image": ("images", "img", ".png"),
    "audio": ("audio", "snd", ".wav"),
    "video": ("video", "vid", ".mp4"),
}
COUNT_KEYS = {"image": "images", "audio": "audio", "video": "videos"}  # as ace_core.synth says
RENDER = {"image": render_picture, "audio": render_sound, "video": render_video}


def draw_item(seed: int, modality: str, index: int, *, render: bool = True):
    """(description, captions, media or None) of item ``index``; deterministic."""
    rng = item_rng(seed, modality, index)
    item = DRAW[modality](rng)
    caps = captions(rng, item)
    return item, caps, (RENDER[modality](item, rng) if render else None)


def item_path(modality: str, index: int) -> str:
    folder, stem, ext = FOLDERS[modality]
    return f"{folder}/{stem}_{index:06d}{ext}"


def write_world_corpus(
    out: str | Path,
    counts: dict[str, int],
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write ``counts`` ({"image": n, "audio": n, "video": n}) items under ``out``; returns
    {"images", "audio", "videos", "captions", "path"} as ``ace_core.synth`` does."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total, done, n_captions = sum(counts.values()), 0, 0
    with open(out / "captions.jsonl", "w") as index:
        for modality, n in counts.items():
            (out / FOLDERS[modality][0]).mkdir(exist_ok=True)
            for i in range(n):
                _, caps, media = draw_item(seed, modality, i)
                rel = item_path(modality, i)
                WRITE[modality](out / rel, media)
                index.write(json.dumps({"path": rel, "captions": caps}) + "\n")
                n_captions += len(caps)
                done += 1
                if progress and (done % 500 == 0 or done == total):
                    progress(done, total)
    written = {COUNT_KEYS[m]: counts.get(m, 0) for m in FOLDERS}
    return {**written, "captions": n_captions, "path": str(out)}


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, optimize=False)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile as sf

    sf.write(path, samples, SR, subtype="PCM_16")


WRITE = {"image": _write_png, "audio": _write_wav, "video": write_mp4}


def descriptions(seed: int, modality: str, n: int) -> Iterator[str]:
    """The keys of the first ``n`` items, streamed (nothing rendered)."""
    for i in range(n):
        rng = item_rng(seed, modality, i)
        yield DRAW[modality](rng).key()


def shared_description_share(keys: Iterator[str]) -> dict:
    """Of the items, how many share their full description with another item. Keeps one
    8-byte digest per distinct description."""
    counts: Counter[bytes] = Counter()
    for key in keys:
        counts[hashlib.blake2b(key.encode(), digest_size=8).digest()] += 1
    items = sum(counts.values())
    shared = sum(c for c in counts.values() if c > 1)
    return {
        "items": items,
        "distinct": len(counts),
        "shared": shared,
        "shared_share": round(shared / max(items, 1), 5),
    }
