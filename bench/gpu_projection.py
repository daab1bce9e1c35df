"""Project index cost on a device from a few unit costs measured there (issue: scale, part 1).

    .venv/bin/python bench/gpu_projection.py [--device cuda] [--sizes 100000 1000000 10000000]
        [--out FILE.json]

One short run per device (a lent GPU machine has minutes, not hours). It measures on
``--device`` (default: cuda when there is one):

- the default image model (ViT-B-32, random weights: speed does not depend on them) through
  the product's encoder (fp16 autocast on CUDA), bare model images/s on ready tensors;
- decoding + preprocessing of JPEGs of 200-1600 px a side, ms of one CPU core per image:
  with the machine's cores this bounds the images/s the decoding threads can feed;
- one training step of the retriever at its default size on the shapes of a 10k-item index
  (``bench/decoder_step.py``'s workload: batch 64, bf16 autocast on CUDA), and one
  trie-constrained beam search of 32 queries (beam 10).

and projects, for each corpus size: embedding seconds (items / the smaller of the model's
and the decoders' rates on a device; on the CPU the two share the cores, so their costs
add), training seconds to convergence at the default budget (``train.examples_per_item``
examples per item, the measured curves' flat point: items x that / the batch steps x the
step) and the beam search's queries/s
(without the query's text encoder). Not projected: discovery, IDs (faiss K-Means and RQ-VAE
run on the CPU) and the evaluation passes inside training (see bench/scale.py's figures).
On the CPU the same script gives the figures to check the projection against what
bench/scale.py and bench/clip_retrieval.py measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ace_core.retrieval.training import TrainConfig  # noqa: E402
from bench import clip_retrieval, decoder_step  # noqa: E402
from bench.timing import median_time  # noqa: E402

SMOKE = ["--device", "cpu", "--sizes", "1000", "--steps", "1", "--batch", "2"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_s(fn, device: torch.device, rounds: int) -> float:
    fn()  # warm-up (CUDA kernels, allocator)
    return median_time(fn, rounds, sync=lambda: _sync(device))


def image_model_rate(device: torch.device, batch: int, rounds: int) -> float:
    from ace_core.media.encoders import ImageEncoderConfig, OpenClipImageEncoder

    enc = OpenClipImageEncoder(ImageEncoderConfig("ViT-B-32", "random"), device=device)
    x = torch.randn(batch, 3, enc.input_side, enc.input_side)
    return batch / _median_s(lambda: enc.embed_tensor(x), device, rounds)


def decode_ms(n: int = 64) -> float:
    """Decode + preprocess ms per JPEG on one core (``bench/clip_retrieval.py``'s mixed-size
    JPEGs and its timing of ace's own decoders)."""
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = clip_retrieval.write_jpegs(Path(tmp) / "jpegs", n)
        return clip_retrieval.prepare_ms(jpegs, "random")


def retriever_costs(device: torch.device, steps: int) -> tuple[float, float]:
    """(training step ms, beam search of 32 queries ms) at the 10k-index shapes
    (``bench/decoder_step.py``'s workload and timings on ``device``)."""
    w = decoder_step.Workload(10_000, 0, 64, 20, None, device)
    return decoder_step.time_steps(w, steps), decoder_step.time_beam_search(w, 5)


def _budget(items: int, per_item: float, batch: int) -> int:
    return -(-int(items * per_item) // batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--batch", type=int, help="image batch (default 256 on CUDA, 32 on CPU)")
    ap.add_argument("--steps", type=int, default=20, help="training steps timed")
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (256 if device.type == "cuda" else 32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model_rate = image_model_rate(device, batch, 5)
    prep_ms = decode_ms()
    cores = len(os.sched_getaffinity(0))
    feed_rate = cores * 1e3 / prep_ms
    if device.type == "cpu":  # the model and the decoding threads share the same cores
        embed_rate, bound = 1 / (1 / model_rate + 1 / feed_rate), "shared cores"
    else:  # the device runs the model while the cores decode
        embed_rate, bound = (
            min(model_rate, feed_rate),
            ("model" if model_rate < feed_rate else "decoding"),
        )
    step_ms, beam_ms = retriever_costs(device, args.steps)
    per_item, batch_size = TrainConfig().examples_per_item, TrainConfig().batch_size
    figures = {
        "device": name,
        "cores": cores,
        "vit_b32_images_per_s": round(model_rate, 1),
        "image_batch": batch,
        "decode_ms_per_image_one_core": round(prep_ms, 2),
        "decode_images_per_s_all_cores": round(feed_rate, 1),
        "train_step_ms": round(step_ms, 2),
        "beam_search_32_queries_ms": round(beam_ms, 2),
        "queries_per_s": round(32e3 / beam_ms, 1),
        "examples_per_item": per_item,
        "projection": [
            {
                "items": n,
                "embed_s": round(n / embed_rate, 1),
                "embed_bound_by": bound,
                "train_steps": _budget(n, per_item, batch_size),
                "train_s_at_budget": round(_budget(n, per_item, batch_size) * step_ms / 1e3, 1),
            }
            for n in args.sizes
        ],
    }
    print(f"{name}, {cores} cores: ViT-B-32 {model_rate:.1f} images/s (batch {batch}); decoding")
    print(f"{prep_ms:.2f} ms/image/core -> {feed_rate:.1f} images/s on {cores} cores; training")
    qps = 32e3 / beam_ms
    print(f"step {step_ms:.2f} ms; beam search of 32 queries {beam_ms:.2f} ms ({qps:.1f} q/s)")
    print("\n| items | embed s (ViT-B-32) | bound by | train s to convergence |")
    print("|---|---|---|---|")
    for p in figures["projection"]:
        print(
            f"| {p['items']:,} | {p['embed_s']:,.1f} | {p['embed_bound_by']} "
            f"| {p['train_s_at_budget']:,.1f} ({p['train_steps']:,} steps, "
            f"{per_item:g} examples per item) |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
