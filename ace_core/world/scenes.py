"""What an item of the scenes world is: a description drawn from a seeded generator.

- picture: 2-4 objects (colour, shape, size) in distinct cells of a 3 x 3 grid, over a
  textured background;
- sound: a sequence of 3-4 events (kind, register, timbre, loudness) at a tempo, under a
  loudness envelope;
- video: 2-3 objects (colour, shape, size) each moving in its own direction at its own speed,
  over a background colour.

Each description has a canonical ``key``: two items share a key exactly when their full
descriptions are the same. Item ``i`` of a seed draws from its own generator
(``item_rng``), so a description never depends on how many items came before it or on the
rendering, and describing 100k items takes no rendering at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ace_core.world import vocab

MODALITY_CODES = {"image": 1, "audio": 2, "video": 3}


def item_rng(seed: int, modality: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, MODALITY_CODES[modality], index])


def _pick(rng: np.random.Generator, options) -> str:
    keys = list(options)
    return keys[int(rng.integers(len(keys)))]


@dataclass(frozen=True)
class Thing:
    color: str
    shape: str
    size: str
    cell: str = ""  # pictures: where it is
    direction: str = ""  # videos: where it goes
    speed: str = ""

    def key(self) -> str:
        return "/".join(
            v
            for v in (self.color, self.shape, self.size, self.cell, self.direction, self.speed)
            if v
        )


@dataclass(frozen=True)
class Picture:
    things: tuple[Thing, ...]
    background: str
    modality: ClassVar[str] = "image"

    def key(self) -> str:
        things = ";".join(sorted(t.key() for t in self.things))
        return f"{self.modality}|{self.background}|{things}"


@dataclass(frozen=True)
class Event:
    kind: str
    register: str
    timbre: str
    loudness: str

    def key(self) -> str:
        return f"{self.kind}/{self.register}/{self.timbre}/{self.loudness}"


@dataclass(frozen=True)
class Sound:
    events: tuple[Event, ...]
    tempo: str
    envelope: str

    def key(self) -> str:  # order matters: a sequence
        return f"audio|{self.tempo}|{self.envelope}|" + ">".join(e.key() for e in self.events)


@dataclass(frozen=True)
class Video(Picture):
    """Objects that move: each thing has a direction and a speed instead of a cell."""

    modality: ClassVar[str] = "video"


def _count(rng: np.random.Generator, counts: dict[int, float]) -> int:
    return int(rng.choice(list(counts), p=list(counts.values())))


def draw_picture(rng: np.random.Generator) -> Picture:
    n = _count(rng, {2: 0.25, 3: 0.45, 4: 0.30})
    cells = rng.choice(list(vocab.CELLS), size=n, replace=False)
    things = tuple(
        Thing(_pick(rng, vocab.COLORS), _pick(rng, vocab.SHAPES), _pick(rng, vocab.SIZES), str(c))
        for c in cells
    )
    return Picture(things, _pick(rng, vocab.BACKGROUNDS))


def draw_sound(rng: np.random.Generator) -> Sound:
    n = _count(rng, {3: 0.4, 4: 0.6})
    events = tuple(
        Event(
            _pick(rng, vocab.SOUND_KINDS),
            _pick(rng, vocab.REGISTERS),
            _pick(rng, vocab.TIMBRES),
            _pick(rng, vocab.LOUDNESS),
        )
        for _ in range(n)
    )
    return Sound(events, _pick(rng, vocab.TEMPOS), _pick(rng, vocab.ENVELOPES))


def draw_video(rng: np.random.Generator) -> Video:
    n = _count(rng, {2: 0.2, 3: 0.8})
    things = tuple(
        Thing(
            _pick(rng, vocab.COLORS),
            _pick(rng, vocab.SHAPES),
            _pick(rng, vocab.SIZES),
            direction=_pick(rng, vocab.DIRECTIONS),
            speed=_pick(rng, vocab.SPEEDS),
        )
        for _ in range(n)
    )
    return Video(things, _pick(rng, vocab.VIDEO_BACKGROUNDS))


DRAW = {"image": draw_picture, "audio": draw_sound, "video": draw_video}
