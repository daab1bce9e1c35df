"""Embedding throughput against clip-retrieval (issue: scale). Prints markdown; not a test.

  .venv/bin/python bench/clip_retrieval.py [--images 512] [--repeats 3] [--work DIR]

- clip-retrieval 2.45.0 is installed into its own venv (.bench-venvs/clip-retrieval). Its
  heavy shared wheels (torch, torchvision, Pillow) come from .venv through a .pth file placed
  after the venv's own site-packages, so pip installs only what clip-retrieval pins
  differently (open_clip 2.x, pyarrow 15, transformers 4, ...) into that venv.
- The same 512 JPEGs of mixed sizes (synthetic scenes re-encoded at 200-1600 px a side) and
  the same ViT-B-32, randomly initialised (seed 0) and saved once to a local safetensors file
  that both load; CPU only.
- Whole commands, alternating, ``--repeats`` times: ``clip-retrieval inference`` (files
  input, batch 64, 2 preprocessing workers, no text, no JIT) and ``ace embed`` (its defaults:
  batch 32, 2 decoding threads), each into a fresh output folder. Medians of wall time.
- The two outputs are compared per image (cosine of ace's and clip-retrieval's embeddings).
- Steady-state overlap of ace's pipeline for ViT-B-32 on these JPEGs: pipeline images/s
  (decoding threads + model) / bare model images/s on the pre-decoded tensors.
- A floor for any ``ace embed`` run here: Prefect's embedded API started alone (nothing else
  running) + the images at the bare model's rate + their decoding and preprocessing CPU
  (one thread, timed per image) spread over the cores. Imports, model loading and flow
  bookkeeping come on top; the floor says how much room the 2x target leaves them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VENV = ROOT / ".bench-venvs" / "clip-retrieval"
CLIP_RETRIEVAL = "clip-retrieval==2.45.0"
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}

SMOKE = ["--images", "8", "--repeats", "1", "--work", "clip-retrieval"]


def ensure_venv() -> Path:
    """clip-retrieval's own venv (created once); returns its ``clip-retrieval`` command."""
    exe = VENV / "bin" / "clip-retrieval"
    if exe.exists():
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    shared = _purelib(sys.executable)  # .venv's site-packages, searched after the venv's own
    Path(_purelib(str(VENV / "bin" / "python")), "zz_ace_shared.pth").write_text(shared + "\n")
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*pip, CLIP_RETRIEVAL, "setuptools<70"], check=True)  # clip needs pkg_resources
    return exe


def _purelib(python: str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def write_jpegs(out: Path, n: int, seed: int = 0) -> Path:
    """n JPEGs of mixed sizes: synthetic scenes, resized to random 200-1600 px sides."""
    import numpy as np
    from PIL import Image

    from ace_core.synth import CorpusCounts, write_sample_corpus

    if out.exists() and len(list(out.glob("*.jpg"))) == n:
        return out
    scenes = out.parent / "scenes"
    write_sample_corpus(scenes, seed=seed, counts=CorpusCounts(images=n, audio=0, videos=0))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, png in enumerate(sorted((scenes / "images").glob("*.png"))):
        w, h = (int(v) for v in rng.integers(200, 1601, 2))
        img = Image.open(png).convert("RGB").resize((w, h), Image.BICUBIC)
        grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)  # photo-like grain
        pixels = np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(out / f"photo_{i:04d}.jpg", quality=90)
    shutil.rmtree(scenes)
    return out


def random_vit_b32(path: Path) -> Path:
    """ViT-B-32 with seeded random weights, saved as safetensors (loaded by both tools)."""
    if path.exists():
        return path
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def run_clip_retrieval(exe: Path, images: Path, weights: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        str(exe), "inference", "--input_dataset", str(images), "--output_folder", str(out),
        "--input_format", "files", "--clip_model", f"open_clip:ViT-B-32/{weights}",
        "--batch_size", "64", "--num_prepro_workers", "2", "--enable_text", "False",
        "--enable_metadata", "False", "--use_jit", "False", "--use_mclip", "False",
    ]  # fmt: skip
    env = {**ENV, "PATH": f"{exe.parent}:{ENV['PATH']}"}
    return _timed(argv, env)


def run_ace(images: Path, weights: Path, store: Path) -> float:
    shutil.rmtree(store, ignore_errors=True)
    argv = [
        str(ROOT / ".venv" / "bin" / "ace"), "embed", str(images), "--store", str(store),
        "--image-model", "ViT-B-32", "--image-weights", str(weights), "--json",
    ]  # fmt: skip
    return _timed(argv, ENV)


def _timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{Path(argv[0]).name} failed:\n{proc.stderr[-3000:]}")
    return seconds


def agreement(images: Path, cr_out: Path, store: Path) -> tuple[float, float, int]:
    """(median, min) cosine between ace's and clip-retrieval's embedding of each image."""
    import numpy as np
    import pyarrow.parquet as pq

    from ace_index.storage.formats.tables import read_embeddings

    ids, _, ace = read_embeddings(sorted(store.rglob("*.emb.parquet")))
    by_id = dict(zip(ids, ace))
    cr = np.load(cr_out / "img_emb" / "img_emb_0.npy").astype(np.float32)
    paths = pq.read_table(cr_out / "metadata" / "metadata_0.parquet").column("image_path")
    cos = []
    for path, vec in zip(paths.to_pylist(), cr):
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        a = by_id[sha]
        cos.append(float(a @ vec / (np.linalg.norm(a) * np.linalg.norm(vec))))
    return statistics.median(cos), min(cos), len(cos)


def overlap(images: Path, weights: Path, repeats: int) -> tuple[float, float, float]:
    """ace's pipeline vs bare model images/s for ViT-B-32 on these JPEGs (batch 32)."""
    from ace_core.media.discovery import discover
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import ImageEncoderConfig
    from ace_core.media.pipeline import build_encoder
    from bench.embed import modality_rates

    files = discover(images).files
    enc = build_encoder("image", EmbedConfig(image=ImageEncoderConfig("ViT-B-32", str(weights))))
    return modality_rates(files, {"image": enc}, 32, repeats)["image"]


def api_start_seconds(repeats: int) -> float:
    """Median seconds for Prefect's embedded API, spawned alone, to answer /health."""
    from ace_index.flows import embedded_api

    runs = []
    for _ in range(repeats):
        api = embedded_api.EmbeddedApi()
        api.spawn()
        while not embedded_api._answers(f"{api.api_url}/health"):
            time.sleep(0.02)
        runs.append(time.perf_counter() - api.spawned_at)
        api.stop()
    return statistics.median(runs)


def prepare_ms(images: Path, weights: Path | str) -> float:
    """Decode + preprocess CPU per image (ms, one thread), as ace's pipeline does it."""
    import torch

    from ace_core.media.discovery import discover
    from ace_core.media.embed_config import EmbedConfig
    from ace_core.media.encoders import ImageEncoderConfig
    from ace_core.media.pipeline import build_encoder, default_decoders

    files = discover(images).files
    config = EmbedConfig(image=ImageEncoderConfig("ViT-B-32", str(weights)))
    enc = build_encoder("image", config)
    decode = default_decoders(config.pipeline, enc.input_side)["image"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core's time per image, no pool spinning in the figure
    try:
        started = time.perf_counter()
        for f in files:
            enc.prepare(decode(f))
        return (time.perf_counter() - started) / len(files) * 1e3
    finally:
        torch.set_num_threads(threads)


def print_floor(args, images: Path, weights: Path, bare: float, clip_retrieval_s: float) -> None:
    api = api_start_seconds(args.repeats)
    prep = prepare_ms(images, weights)
    model_s = args.images / bare
    prep_s = args.images * prep / 1e3 / os.cpu_count()
    floor = api + model_s + prep_s
    print(
        f"floor: API alone {api:.1f} s + model {model_s:.1f} s ({bare:.1f} images/s) + decoding "
        f"{prep:.1f} ms CPU/image over {os.cpu_count()} cores {prep_s:.1f} s = {floor:.1f} s: at "
        f"most {clip_retrieval_s / floor:.2f}x clip-retrieval; 2x needs a whole run <= "
        f"{clip_retrieval_s / 2:.1f} s, {clip_retrieval_s / 2 - floor:.1f} s above the floor"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ace-bench-clipret-"))
    exe = ensure_venv()
    images = write_jpegs(work / "jpegs", args.images)
    weights = random_vit_b32(work / "vit-b-32-random.safetensors")
    times = {"clip-retrieval": [], "ace embed": []}
    for r in range(args.repeats):
        times["clip-retrieval"].append(run_clip_retrieval(exe, images, weights, work / "cr-out"))
        times["ace embed"].append(run_ace(images, weights, work / "ace-store"))
        print(f"run {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.images} JPEGs, ViT-B-32 random weights, CPU ({os.cpu_count()} cores)\n")
    print("| tool | whole-run seconds (median) | runs | images/s |")
    print("|---|---|---|---|")
    for k, v in times.items():
        runs = ", ".join(f"{x:.1f}" for x in v)
        print(f"| {k} | {med[k]:.1f} | {runs} | {args.images / med[k]:.2f} |")
    print(f"\nace embed / clip-retrieval images/s: {med['clip-retrieval'] / med['ace embed']:.2f}x")
    c_med, c_min, n = agreement(images, work / "cr-out", work / "ace-store")
    print(f"embedding agreement over {n} images: median cosine {c_med:.4f}, min {c_min:.4f}")
    pipe, bare, ratio = overlap(images, weights, args.repeats)
    print(
        f"steady-state overlap: pipeline {pipe:.1f} images/s / bare model {bare:.1f} images/s "
        f"= {ratio:.2f}"
    )
    print_floor(args, images, weights, bare, med["clip-retrieval"])


if __name__ == "__main__":
    main()
