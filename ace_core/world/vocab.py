"""The words of the scenes world: each attribute value with the synonyms its captions draw from.

The first word of each list is the canonical name (used in descriptions and keys); captions
pick any of them, so a held-out caption differs from the training ones in words, not only in
their order.
"""

from __future__ import annotations

COLORS = {
    "red": ((220, 40, 40), ("red", "crimson", "scarlet")),
    "green": ((40, 170, 60), ("green", "emerald", "leafy green")),
    "blue": ((40, 70, 220), ("blue", "navy", "cobalt")),
    "yellow": ((235, 210, 40), ("yellow", "golden", "lemon")),
    "purple": ((140, 50, 180), ("purple", "violet", "lilac")),
    "orange": ((245, 140, 30), ("orange", "amber", "tangerine")),
    "white": ((250, 250, 250), ("white", "snowy", "ivory")),
    "black": ((15, 15, 15), ("black", "jet black", "ebony")),
}
SHAPES = {
    "circle": ("circle", "disc", "round dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge", "three-sided shape"),
    "star": ("star", "five-pointed star", "starburst"),
    "cross": ("cross", "plus sign", "x-shaped cross"),
    "diamond": ("diamond", "rhombus", "lozenge"),
}
SIZES = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
CELLS = {  # 3 x 3 grid: (column, row) of each position word
    "top left": ((0, 0), ("top left", "upper left", "top-left corner")),
    "top": ((1, 0), ("top", "top middle", "upper centre")),
    "top right": ((2, 0), ("top right", "upper right", "top-right corner")),
    "left": ((0, 1), ("left", "middle left", "left side")),
    "centre": ((1, 1), ("centre", "center", "middle")),
    "right": ((2, 1), ("right", "middle right", "right side")),
    "bottom left": ((0, 2), ("bottom left", "lower left", "bottom-left corner")),
    "bottom": ((1, 2), ("bottom", "bottom middle", "lower centre")),
    "bottom right": ((2, 2), ("bottom right", "lower right", "bottom-right corner")),
}
BACKGROUNDS = {
    "plain": ("plain", "flat grey", "uniform"),
    "striped": ("striped", "stripy", "lined"),
    "checkered": ("checkered", "chequered", "checkerboard"),
    "dotted": ("dotted", "spotted", "polka-dot"),
    "noisy": ("noisy", "grainy", "speckled"),
    "gradient": ("gradient", "shaded", "fading"),
}

# ----------------------------------------------------------------------------- sounds
SOUND_KINDS = {
    "tone": ("tone", "note", "steady tone"),
    "chord": ("chord", "harmony", "triad"),
    "rising sweep": ("rising sweep", "upward glide", "rising whistle"),
    "falling sweep": ("falling sweep", "downward glide", "falling whistle"),
    "pulses": ("pulse train", "series of beeps", "stutter of beeps"),
    "noise": ("noise burst", "hiss", "burst of static"),
}
REGISTERS = {
    "low": (150.0, ("low", "deep", "bass")),
    "middle": (450.0, ("middle", "mid-range", "medium-pitched")),
    "high": (1350.0, ("high", "high-pitched", "shrill")),
}
TIMBRES = {"pure": ("pure", "clean", "smooth"), "bright": ("bright", "buzzy", "harsh")}
LOUDNESS = {"quiet": ("quiet", "faint", "soft"), "loud": ("loud", "strong", "powerful")}
TEMPOS = {"slow": ("slow", "unhurried", "leisurely"), "fast": ("fast", "quick", "rapid")}
ENVELOPES = {
    "steady": ("at a steady volume", "at an even level", "with constant volume"),
    "fading in": ("fading in", "growing louder", "getting louder"),
    "fading out": ("fading out", "dying away", "getting quieter"),
    "swelling": ("swelling", "rising and falling in volume", "swelling then fading"),
}
THEN = ("then", "followed by", "and after that", "next")

# ----------------------------------------------------------------------------- videos
DIRECTIONS = {
    "left": ((-1, 0), ("left", "leftwards", "to the left")),
    "right": ((1, 0), ("right", "rightwards", "to the right")),
    "up": ((0, -1), ("up", "upwards", "towards the top")),
    "down": ((0, 1), ("down", "downwards", "towards the bottom")),
}
SPEEDS = {
    "slowly": (0.25, ("slowly", "gently", "lazily")),
    "quickly": (0.6, ("quickly", "fast", "swiftly")),
}
VIDEO_BACKGROUNDS = {
    "grey": ((90, 90, 90), ("grey", "gray", "ash")),
    "dark": ((30, 30, 30), ("dark", "dim", "night")),
    "light": ((200, 200, 200), ("light", "pale", "bright")),
    "brown": ((130, 95, 60), ("brown", "sandy", "earthy")),
}
