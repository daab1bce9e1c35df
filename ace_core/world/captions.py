"""Captions of the scenes world: paraphrase templates over synonyms.

Every caption names the item's whole description (every object or event and every global
attribute), so each caption singles out its item; the words and their order vary. An item
gets ``N_CAPTIONS`` distinct captions, drawn from its own generator.
"""

from __future__ import annotations

import numpy as np

from ace_core.world import vocab
from ace_core.world.scenes import Event, Picture, Sound, Thing, Video

N_CAPTIONS = 6


def _say(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _object(rng, t: Thing) -> str:
    color = _say(rng, vocab.COLORS[t.color][1])
    shape = _say(rng, vocab.SHAPES[t.shape])
    size = _say(rng, vocab.SIZES[t.size])
    form = int(rng.integers(3))
    if form == 0:
        return _article(f"{size} {color} {shape}")
    if form == 1:
        return _article(f"{color} {shape}, {size},")
    return _article(f"{size} {shape} in {color}")


def _placed(rng, t: Thing) -> str:
    where = _say(rng, vocab.CELLS[t.cell][1])
    form = int(rng.integers(3))
    if form == 0:
        return f"{_object(rng, t)} at the {where}"
    if form == 1:
        return f"{_object(rng, t)} in the {where}"
    return f"at the {where} {_object(rng, t)}"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def picture_caption(rng, p: Picture) -> str:
    order = rng.permutation(len(p.things))
    things = _listing([_placed(rng, p.things[i]) for i in order])
    bg = _say(rng, vocab.BACKGROUNDS[p.background])
    form = int(rng.integers(4))
    if form == 0:
        return f"{things} on a {bg} background"
    if form == 1:
        return f"a {bg} picture with {things}"
    if form == 2:
        return f"an image of {things} over a {bg} backdrop"
    return f"{things}; the background is {bg}"


def _event(rng, e: Event) -> str:
    words = [
        _say(rng, vocab.LOUDNESS[e.loudness]),
        _say(rng, vocab.REGISTERS[e.register][1]),
        _say(rng, vocab.TIMBRES[e.timbre]),
    ]
    return _article(" ".join(words) + " " + _say(rng, vocab.SOUND_KINDS[e.kind]))


def sound_caption(rng, s: Sound) -> str:
    seq = _event(rng, s.events[0])
    for e in s.events[1:]:
        seq += f", {_say(rng, vocab.THEN)} {_event(rng, e)}"
    tempo = _say(rng, vocab.TEMPOS[s.tempo])
    env = _say(rng, vocab.ENVELOPES[s.envelope])
    form = int(rng.integers(3))
    if form == 0:
        return f"{seq}, at a {tempo} tempo, {env}"
    if form == 1:
        return f"a {tempo} sequence {env}: {seq}"
    return f"{tempo} sounds {env}; {seq}"


def _moving(rng, t: Thing) -> str:
    where = _say(rng, vocab.DIRECTIONS[t.direction][1])
    speed = _say(rng, vocab.SPEEDS[t.speed][1])
    verb = _say(rng, ("moving", "sliding", "travelling", "gliding"))
    if rng.integers(2):
        return f"{_object(rng, t)} {verb} {where} {speed}"
    return f"{_object(rng, t)} {verb} {speed} {where}"


def video_caption(rng, v: Video) -> str:
    order = rng.permutation(len(v.things))
    things = _listing([_moving(rng, v.things[i]) for i in order])
    bg = _say(rng, vocab.VIDEO_BACKGROUNDS[v.background][1])
    form = int(rng.integers(3))
    if form == 0:
        return f"a video of {things} on a {bg} background"
    if form == 1:
        return f"{things}, over {_article(bg)} backdrop"
    return f"clip: {things}; the background is {bg}"


CAPTION = {Picture: picture_caption, Sound: sound_caption, Video: video_caption}


def captions(rng: np.random.Generator, item, n: int = N_CAPTIONS) -> list[str]:
    """``n`` distinct captions of ``item`` (fewer only if 20 n draws found no more)."""
    say = CAPTION[type(item)]
    out: list[str] = []
    for _ in range(20 * n):
        text = " ".join(say(rng, item).split()).replace(",,", ",").replace(",;", ";")
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
