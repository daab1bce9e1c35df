"""What the tiny CLIP tower learns of the scenes world's compositions (issue 22). Not a test.

  .venv/bin/python bench/tiny_binding.py [--items 500] [--seed 4343]

For held-out pictures, the true caption against the same caption (same templates and
synonyms) with one thing changed: an attribute moved between objects (binding: colours,
shapes or places rotated among the objects, so the bag of words is unchanged), or one
object's colour / shape replaced by one that is not in the picture (presence). Reports how
often the towers score the true caption higher (0.5 is chance).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.media.decoding import Decoded  # noqa: E402
from ace_core.media.encoders import ImageEncoderConfig, OpenClipImageEncoder  # noqa: E402
from ace_core.world import vocab  # noqa: E402
from ace_core.world.captions import picture_caption  # noqa: E402
from ace_core.world.corpus import draw_item  # noqa: E402

SMOKE = ["--items", "20"]


def rotated(p, field):
    values = [getattr(t, field) for t in p.things]
    if len(set(values)) < 2:
        return None
    moved = values[1:] + values[:1]
    return replace(p, things=tuple(replace(t, **{field: v}) for t, v in zip(p.things, moved)))


def replaced(p, field, table):
    present = {getattr(t, field) for t in p.things}
    absent = [v for v in table if v not in present]
    return replace(p, things=(replace(p.things[0], **{field: absent[0]}), *p.things[1:]))


PROBES = {
    "binding: colours moved between objects": lambda p: rotated(p, "color"),
    "binding: shapes moved between objects": lambda p: rotated(p, "shape"),
    "binding: places moved between objects": lambda p: rotated(p, "cell"),
    "presence: a colour not in the picture": lambda p: replaced(p, "color", vocab.COLORS),
    "presence: a shape not in the picture": lambda p: replaced(p, "shape", vocab.SHAPES),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--seed", type=int, default=4343)
    args = ap.parse_args()
    weights = ROOT / "models" / "tiny" / "ace-tiny-clip.safetensors"
    enc = OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-clip", str(weights)), device="cpu")
    drawn = [draw_item(args.seed, "image", i) for i in range(args.items)]
    images = enc.embed([enc.prepare(Decoded(Image.fromarray(px))) for _, _, px in drawn])
    print("| probe | pictures | true caption scored higher |\n|---|---|---|")
    for name, alter in PROBES.items():
        wins = []
        for n, (pic, _, _) in enumerate(drawn):
            other = alter(pic)
            if other is None:
                continue
            texts = [picture_caption(np.random.default_rng(n), q) for q in (pic, other)]
            t = enc.embed_text(texts)
            wins.append(float(t[0] @ images[n] > t[1] @ images[n]))
        print(f"| {name} | {len(wins)} | {np.mean(wins):.3f} |")


if __name__ == "__main__":
    main()
