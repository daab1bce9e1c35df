"""Costs of what the page and API added (issue 25), each beside a reference in the same run:

- /play: transcoding a video browsers do not play to H.264/AAC (seconds per second of media),
  against decoding the same file only (what a thumbnail or an embedding already pays);
- dates at staging: reading a photo's EXIF date (header only), against hashing the same file
  (what discovery already pays per file);
- keyword matches: building the BM25 index over N items' file names and captions and one
  query, against one exact dense search over N x 512 embeddings;
- relevance: fitting a calibration on validation results (pure numpy).

    .venv/bin/python bench/page_api.py [--items 100000] [--repeats 3]

Reads ../shared/media when present (the real clips); else synthesises a clip."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_time  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"

SMOKE = ["--items", "1000", "--repeats", "1"]


def _clips(tmp: Path) -> list[Path]:
    found = [SHARED / "odd/decord/examples/flipping_a_pancake.mkv", SHARED / "imageio/cockatoo.mp4"]
    found = [p for p in found if p.exists()]
    if found:
        return found
    import av

    path = tmp / "mpeg4.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 640, 360, "yuv420p"
        for k in range(250):
            frame = np.full((360, 640, 3), k % 255, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())
    return [path]


def bench_renditions(tmp: Path, repeats: int) -> None:
    import av

    from ace_core.media.renditions import write_rendition

    print("| clip | seconds of media | transcode s | decode-only s | transcode / media s |")
    print("|---|---|---|---|---|")
    for clip in _clips(tmp):
        with av.open(str(clip)) as c:
            length = c.duration / 1e6

        def decode(clip=clip):
            with av.open(str(clip)) as c:
                for _ in c.decode(*c.streams.video, *c.streams.audio):
                    pass

        t_rend = median_time(lambda clip=clip: write_rendition(clip, tmp / "r.mp4"), repeats)
        t_dec = median_time(decode, repeats)
        print(
            f"| {clip.name} | {length:.1f} | {t_rend:.2f} | {t_dec:.2f} | {t_rend / length:.2f} |"
        )


def bench_dates(repeats: int) -> None:
    from ace_core.media.dates import exif_date
    from ace_core.media.discovery import sha256_file

    photos = sorted((SHARED / "odd/pillow").glob("*.jp*g"))[:20]
    if not photos:
        print("dates: ../shared/media not here; skipped")
        return
    t_exif = median_time(lambda: [exif_date(str(p)) for p in photos], repeats) / len(photos)
    t_hash = median_time(lambda: [sha256_file(p) for p in photos], repeats) / len(photos)
    print(f"\nEXIF date per photo: {t_exif * 1e3:.3f} ms; sha256 of the same file: "
          f"{t_hash * 1e3:.3f} ms ({len(photos)} JPEGs of ../shared/media/odd/pillow)")  # fmt: skip


def bench_keywords(n: int, repeats: int) -> None:
    from ace_core.retrieval.keywords import KeywordIndex, item_document

    rng = np.random.default_rng(0)
    words = np.array("red green blue circle square star loud quiet dog rain bell tone"
                     " beach city night morning car bird piano drum".split())  # fmt: skip
    docs = [item_document(f"photos/2024/IMG_{i:06d}.jpg",
                          [" ".join(rng.choice(words, 6)) for _ in range(3)])
            for i in range(n)]  # fmt: skip
    t = time.perf_counter()
    index = KeywordIndex(docs)
    build = time.perf_counter() - t
    query = median_time(lambda: index.search("a red circle at night", 10), repeats)
    emb = rng.standard_normal((n, 512)).astype(np.float32)
    q = rng.standard_normal(512).astype(np.float32)
    dense = median_time(lambda: np.argpartition(-(emb @ q), 10)[:10], repeats)
    print(
        f"\nkeywords over {n} items: index built in {build:.2f} s; one query "
        f"{query * 1e3:.2f} ms; exact dense search of {n} x 512: {dense * 1e3:.2f} ms"
    )


def bench_calibration(repeats: int) -> None:
    from ace_core.retrieval.relevance import fit_calibration

    rng = np.random.default_rng(1)
    ranked = [[(float(rng.normal(-1 if r == 0 else -4)), "image", r == 0) for r in range(10)]
              for _ in range(512)]  # fmt: skip
    t = median_time(lambda: fit_calibration(ranked), repeats)
    print(f"\nrelevance calibration on 512 validation queries x 10 results: {t * 1e3:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_renditions(Path(tmp), args.repeats)
    bench_dates(args.repeats)
    bench_keywords(args.items, args.repeats)
    bench_calibration(args.repeats)


if __name__ == "__main__":
    main()
