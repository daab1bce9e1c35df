"""The frozen text encoder (all-MiniLM-L6-v2) in float32 against bfloat16: caption features a
second (a build's caption-features stage), one query's encoding, and how far bfloat16's
features are from float32's. Not a test.

    .venv/bin/python -m bench text_precision --corpus /work/data/w10k [--texts 4000]
        [--repeats 3]

``--texts`` captions of the corpus, spread over its captions.jsonl, encoded as a build
encodes them (ace_core.retrieval.text_features.encode_texts: pooled memory, batches of 128
in order of length), ``--repeats`` times per precision in turn; medians. The query figure is
the median of 40 encodings of one caption. Agreement: of the texts' nearest other text by
pooled features (cosine), the share that is the same in both precisions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ace_core.retrieval.text_encoder import (  # noqa: E402
    TextEncoder,
    default_encoder_path,
    load_tokenizer,
    native_bfloat16,
)
from ace_core.retrieval.text_features import FeatureSpec, TextFeatures  # noqa: E402
from bench import spread_captions  # noqa: E402

SMOKE = ["--corpus", "{corpus}", "--texts", "64", "--repeats", "1"]
PRECISIONS = ("float32", "bfloat16")


def features(encoder, tok, texts, precision) -> tuple[TextFeatures, float]:
    spec = FeatureSpec(pooled_memory=True, precision=precision)
    start = time.perf_counter()
    feats = TextFeatures.compute(encoder, tok, texts, device="cpu", spec=spec)
    return feats, time.perf_counter() - start


def query_ms(encoder, tok, text: str, precision: str) -> float:
    spec = FeatureSpec(pooled_memory=True, precision=precision)
    times = []
    for _ in range(40):
        start = time.perf_counter()
        TextFeatures.compute(encoder, tok, [text], device="cpu", spec=spec)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[5:])  # the first few warm the kernels up


def nearest(pooled: torch.Tensor) -> np.ndarray:
    x = torch.nn.functional.normalize(pooled, dim=1)
    sim = x @ x.T
    sim.fill_diagonal_(-2)
    return sim.argmax(1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--texts", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    texts = spread_captions(args.corpus, args.texts)
    path = default_encoder_path()
    tok = load_tokenizer(path)
    encoders = {p: TextEncoder(path, p).eval() for p in PRECISIONS}
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    feats = {}
    for _ in range(args.repeats):
        for p in PRECISIONS:
            feats[p], took = features(encoders[p], tok, texts, p)
            seconds[p].append(took)
    native = native_bfloat16(torch.device("cpu"))
    print(f"{len(texts)} captions of {args.corpus}, {args.repeats} runs each, "
          f"{torch.get_num_threads()} threads; native bfloat16: {native}\n")  # fmt: skip
    print("| precision | texts/s (median) | vs float32 | one query ms (median) |")
    print("|---|---|---|---|")
    rate = {p: len(texts) / statistics.median(seconds[p]) for p in PRECISIONS}
    for p in PRECISIONS:
        q = query_ms(encoders[p], tok, texts[0], p)
        print(f"| {p} | {rate[p]:.1f} | {rate[p] / rate['float32']:.2f}x | {q:.1f} |")
    a, b = feats["float32"].pooled, feats["bfloat16"].pooled
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    same = float((nearest(a) == nearest(b)).mean())
    print(f"\npooled features, bfloat16 against float32: cosine min {cos.min():.6f}, "
          f"mean {cos.mean():.6f}; nearest other caption the same for {same:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
