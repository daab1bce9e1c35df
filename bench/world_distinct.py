"""How distinct the scenes world stays as a corpus grows (issue 22). Not a test.

  .venv/bin/python bench/world_distinct.py [--sizes 1000 10000 100000] [--seed 2027]

For each modality and size: the items drawn (descriptions only, streamed; nothing rendered),
how many distinct full descriptions they have, and the share of items whose full description
another item of the same corpus shares.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ace_core.world.corpus import descriptions, shared_description_share  # noqa: E402

SMOKE = ["--sizes", "100"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--seed", type=int, default=2027)
    args = ap.parse_args()
    print("| modality | items | distinct descriptions | items sharing theirs | share | s |")
    print("|---|---|---|---|---|---|")
    for modality in ("image", "audio", "video"):
        for n in args.sizes:
            t0 = time.perf_counter()
            s = shared_description_share(descriptions(args.seed, modality, n))
            print(f"| {modality} | {n:,} | {s['distinct']:,} | {s['shared']:,} | "
                  f"{100 * s['shared_share']:.2f}% | {time.perf_counter() - t0:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
