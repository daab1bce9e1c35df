"""A corpus folder of the COCO subset in ../shared/realdata/coco-mini for the seen protocol.
Not a test.

  .venv/bin/python bench/coco_corpus.py OUT [--realdata ../shared/realdata]

Copies the photos that have captions (train2017 and val2017) under OUT and writes
OUT/captions.jsonl from the official captions JSON through ``ace_core.caption_formats`` (what
``ace import-captions coco`` does), without the official split: every photo is then a seen
item (ace_core.retrieval.evaluation: 3 captions train, 1 validates, 1 is the test query).
Then: ``bench/fused_protocols.py --corpus OUT --protocols seen``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_core.caption_formats import convert  # noqa: E402

SMOKE = ["coco"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--realdata", default=str(ROOT.parent / "shared" / "realdata"))
    args = ap.parse_args()
    coco, out = Path(args.realdata) / "coco-mini", Path(args.out)
    sources = [
        (str(coco / "annotations" / f"captions_{s}2017.json"), None, f"{s}2017")
        for s in ("train", "val")
    ]
    records = convert("coco", sources)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "captions.jsonl", "w") as f:
        for r in records:
            (out / r["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(coco / r["path"], out / r["path"])
            f.write(json.dumps({"path": r["path"], "captions": r["captions"]}) + "\n")
    print(f"{len(records)} photos, {sum(len(r['captions']) for r in records)} captions -> {out}")


if __name__ == "__main__":
    main()
