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
OBJECT_FORMS = ("{size} {color} {shape}", "{color} {shape}, {size},", "{size} {shape} in {color}")
PLACED_FORMS = ("{obj} at the {where}", "{obj} in the {where}", "at the {where} {obj}")
MOVING_FORMS = ("{obj} {verb} {speed} {where}", "{obj} {verb} {where} {speed}")
VERBS = ("moving", "sliding", "travelling", "gliding")
PICTURE_FORMS = (
    "{things} on a {bg} background",
    "a {bg} picture with {things}",
    "an image of {things} over a {bg} backdrop",
    "{things}; the background is {bg}",
)
SOUND_FORMS = (
    "{seq}, at a {tempo} tempo, {env}",
    "a {tempo} sequence {env}: {seq}",
    "{tempo} sounds {env}; {seq}",
)
VIDEO_FORMS = (
    "a video of {things} on a {bg} background",
    "{things}, over {a_bg} backdrop",
    "clip: {things}; the background is {bg}",
)


def _say(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _object(rng, t: Thing) -> str:
    color = _say(rng, vocab.COLORS[t.color][1])
    shape = _say(rng, vocab.SHAPES[t.shape])
    size = _say(rng, vocab.SIZES[t.size])
    return _article(_say(rng, OBJECT_FORMS).format(size=size, color=color, shape=shape))


def _placed(rng, t: Thing) -> str:
    where = _say(rng, vocab.CELLS[t.cell][1])
    form = _say(rng, PLACED_FORMS)
    return form.format(obj=_object(rng, t), where=where)


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def picture_caption(rng, p: Picture) -> str:
    order = rng.permutation(len(p.things))
    things = _listing([_placed(rng, p.things[i]) for i in order])
    bg = _say(rng, vocab.BACKGROUNDS[p.background])
    return _say(rng, PICTURE_FORMS).format(things=things, bg=bg)


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
    return _say(rng, SOUND_FORMS).format(seq=seq, tempo=tempo, env=env)


def _moving(rng, t: Thing) -> str:
    where = _say(rng, vocab.DIRECTIONS[t.direction][1])
    speed = _say(rng, vocab.SPEEDS[t.speed][1])
    verb = _say(rng, VERBS)
    form = _say(rng, MOVING_FORMS)
    return form.format(obj=_object(rng, t), verb=verb, speed=speed, where=where)


def video_caption(rng, v: Video) -> str:
    order = rng.permutation(len(v.things))
    things = _listing([_moving(rng, v.things[i]) for i in order])
    bg = _say(rng, vocab.VIDEO_BACKGROUNDS[v.background][1])
    return _say(rng, VIDEO_FORMS).format(things=things, bg=bg, a_bg=_article(bg))


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
