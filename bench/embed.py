"""Embedding figures (issue: embedding stage). Prints a markdown table; not a test.

  .venv/bin/python bench/embed.py [--repeats 3] [--quick] [--memory-sizes 200 2000]

- items/s per modality, default (ViT-B-32, HTSAT-tiny) and tiny (ace-tiny-vit) configs, CPU;
- overlap ratio: pipeline items/s (decode in workers + model) / bare model items/s on
  pre-decoded tensors, same batch size;
- memory: peak RSS embedding a corpus 10x larger, shard size fixed (child processes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ace_core.media.discovery import discover  # noqa: E402
from ace_core.media.embed_config import EmbedConfig, PipelineConfig
from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig  # noqa: E402
from ace_core.media.pipeline import build_encoder, default_decoders, embed_files, embed_prepared
from ace_core.synth import CorpusCounts, write_sample_corpus  # noqa: E402
from bench.timing import median_time, reset_peak_rss, status_kb  # noqa: E402

SMOKE = ["--repeats", "1", "--quick", "--memory-sizes", "20", "40"]


def modality_rates(files, encoders, batch, repeats):
    """{modality: (pipeline items/s, bare items/s, ratio)}."""
    cfg = PipelineConfig(batch_size=batch, workers=2)
    decoders = default_decoders(cfg)
    out = {}
    for m in ("image", "audio", "video"):
        fs = [f for f in files if f.modality == m]
        if not fs:
            continue
        enc = encoders[m]
        prepared = [enc.prepare(decoders[m](f)) for f in fs]
        embed_prepared(enc, prepared[:batch], batch)  # warm-up
        bare = median_time(lambda: embed_prepared(enc, prepared, batch), repeats)
        pipe = median_time(lambda: list(embed_files(fs, {m: enc}, cfg)), repeats)
        out[m] = (len(fs) / pipe, len(fs) / bare, bare / pipe)
    return out


def memory_child(corpus: str, shard_size: int) -> None:
    """Run in a child: embed the corpus shard by shard (as the flow does), print peak RSS."""
    from ace_index.storage.formats.shards import load_shard_files, plan_shards, write_embed_shard

    cfg = EmbedConfig(image=ImageEncoderConfig("ace-tiny-vit", "random"), shard_size=shard_size)
    enc = {"image": build_encoder("image", cfg)}
    found = discover(corpus)
    rss_loaded = status_kb("VmRSS")
    reset_peak_rss()
    with tempfile.TemporaryDirectory() as tmp:
        specs = plan_shards(found.files, shard_size, "bench", Path(tmp) / "specs")
        for spec in specs:
            results = embed_files(load_shard_files(spec), enc, cfg.pipeline)
            write_embed_shard(results, Path(tmp), spec, 512)
    print(
        json.dumps(
            {
                "peak_rss_mb": status_kb("VmHWM") / 1024,  # peak since the reset above
                "loaded_rss_mb": rss_loaded / 1024,
                "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "items": len(found.files),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the default (ViT-B-32) config")
    ap.add_argument(
        "--memory-sizes",
        type=int,
        nargs=2,
        default=[200, 2000],
        metavar="IMAGES",
        help="the two corpora of the memory figure (the second 10x the first)",
    )
    ap.add_argument("--memory-child", nargs=2, metavar=("CORPUS", "SHARD"))
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    import torch

    print(f"torch threads: {torch.get_num_threads()}, cuda: {torch.cuda.is_available()}")
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-"))
    write_sample_corpus(tmp / "c", seed=5, counts=CorpusCounts(images=64, audio=16, videos=16))
    files = discover(tmp / "c").files
    configs = [("tiny (ace-tiny-vit + HTSAT-tiny)", "ace-tiny-vit")]
    if not args.quick:
        configs.append(("default (ViT-B-32 + HTSAT-tiny)", "ViT-B-32"))
    print("\n| config | modality | pipeline items/s | bare model items/s | overlap ratio |")
    print("|---|---|---|---|---|")
    for label, model in configs:
        cfg = EmbedConfig(
            image=ImageEncoderConfig(model, "random"), audio=AudioEncoderConfig(checkpoint="random")
        )
        image = build_encoder("image", cfg)
        encoders = {
            "image": image,
            "video": build_encoder("video", cfg, shared=image),
            "audio": build_encoder("audio", cfg),
        }
        for m, (pipe, bare, ratio) in modality_rates(files, encoders, 16, args.repeats).items():
            print(f"| {label} | {m} | {pipe:.1f} | {bare:.1f} | {ratio:.2f} |")

    print(
        "\n| corpus (images) | shard size | RSS after model load MB | peak RSS while embedding MB |"
    )
    print("|---|---|---|---|")
    peaks = []
    for n in args.memory_sizes:
        write_sample_corpus(tmp / f"m{n}", seed=1, counts=CorpusCounts(images=n, audio=0, videos=0))
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(tmp / f"m{n}"), "100"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        peaks.append(rec["peak_rss_mb"])
        print(f"| {n} | 100 | {rec['loaded_rss_mb']:.0f} | {rec['peak_rss_mb']:.0f} |")
    print(f"\nmemory ratio 10x corpus / 1x corpus: {peaks[1] / peaks[0]:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
