"""Training next to another CPU-bound process (issue: scale and speed, "a busy machine").
Prints markdown; not a test.

  .venv/bin/python bench/busy.py [--index] [--items 300] [--epochs 4]

The same small retriever training (300 items, 1,500 captions, 4 epochs; the real MiniLM
encoder and fusion decoder) runs in a fresh process alone and beside one busy-looping
process, with torch/OpenMP's defaults (2 threads, libgomp spin-waiting), ACE's default
(ace_core.cpu_share: the pool sized before every epoch to the cores other processes leave
free), OMP_WAIT_POLICY=PASSIVE, and one thread. With --index: a whole `ace index` of the
sample corpus (tiny aligned encoders) alone and beside the busy process, torch's defaults vs
ACE's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = r"""
import sys, time
sys.path.insert(0, ROOT_PATH)
from ace_index.tasks import _env  # noqa
import numpy as np
from ace_core.ids.kmeans import KMeansConfig
from ace_core.ids.rqvae import RQVAEConfig
from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
from ace_core.media.captions import CaptionEntry
from ace_core.retrieval.dense import DenseTrainConfig
from ace_core.retrieval.fit import fit_retrieval
from ace_core.retrieval.training import TrainConfig
rng = np.random.default_rng(0)
ids = [f"{i:064x}" for i in range(ITEMS)]
x = l2n(rng.standard_normal((ITEMS, 64)).astype(np.float32))
words = ["red", "blue", "green", "circle", "square", "loud", "soft"]
caps = {i: CaptionEntry([" ".join(rng.choice(words, 5)) + f" {k}" for k in range(5)]) for i in ids}
cfg = SemanticIDConfig(kmeans=KMeansConfig(k=8), rqvae=RQVAEConfig(max_epochs=2))
indexer, sids = fit_semantic_ids(ids, x, cfg)
t = time.perf_counter()
train = TrainConfig(epochs=EPOCHS, eval_every=EPOCHS, dense=DenseTrainConfig(epochs=2))
fit_retrieval(ids, x, sids, indexer, caps, train=train)
print(time.perf_counter() - t)
""".replace("ROOT_PATH", repr(str(ROOT)))
SMOKE = ["--items", "40", "--epochs", "1"]

VARIANTS = {
    "torch defaults (ACE_THREADS=fixed: 2 threads, spin-waiting)": {"ACE_THREADS": "fixed"},
    "ACE_THREADS=auto (the default: pool sized to the free cores)": {"ACE_THREADS": "auto"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE", "ACE_THREADS": "fixed"},
    "1 thread (OMP_NUM_THREADS=1)": {"OMP_NUM_THREADS": "1", "ACE_THREADS": "fixed"},
}


def train_seconds(env: dict, items: int, epochs: int) -> float:
    """The training of TRAIN (``items`` items, ``epochs`` epochs) in a fresh process."""
    script = TRAIN.replace("ITEMS", str(items)).replace("EPOCHS", str(epochs))
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def index_seconds(env: dict, corpus: str, store: str) -> float:
    """A whole `ace index` (the tiny aligned encoders), its own reported wall time."""
    import json
    import shutil

    from ace_core.tiny_encoders import index_args

    shutil.rmtree(store, ignore_errors=True)
    ace = str(ROOT / ".venv" / "bin" / "ace")
    out = subprocess.run(
        [ace, "index", corpus, "--store", store, "--json", *index_args(ROOT / "models" / "tiny")],
        env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(json.loads(out.stdout)["seconds"])


def whole_index() -> None:
    """`ace index` of the 88-item sample corpus alone and beside one busy process."""
    import tempfile

    tmp = tempfile.mkdtemp(prefix="ace-bench-busy-")
    subprocess.run([str(ROOT / ".venv" / "bin" / "ace"), "sample-corpus", f"{tmp}/c"],
                   check=True, capture_output=True)  # fmt: skip
    print("| ace index, threads | alone s | beside 1 busy process s | slowdown |")
    print("|---|---|---|---|")
    for name, env in list(VARIANTS.items())[:2]:
        alone = index_seconds(env, f"{tmp}/c", f"{tmp}/s")
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1)
        try:
            busy = index_seconds(env, f"{tmp}/c", f"{tmp}/s")
        finally:
            hog.kill()
        print(f"| {name} | {alone:.1f} | {busy:.1f} | {busy / alone:.2f}x |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", action="store_true", help="a whole `ace index` instead")
    ap.add_argument("--items", type=int, default=300, help="items of the training")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the training")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs\n")
    if args.index:
        sys.path.insert(0, str(ROOT))
        whole_index()
        return
    print("| threads | alone s | beside 1 busy process s | slowdown | vs default alone |")
    print("|---|---|---|---|---|")
    base = None
    for name, env in VARIANTS.items():
        alone = train_seconds(env, args.items, args.epochs)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1)
        try:
            busy = train_seconds(env, args.items, args.epochs)
        finally:
            hog.kill()
        base = base or alone
        print(f"| {name} | {alone:.1f} | {busy:.1f} | {busy / alone:.2f}x | "
              f"{busy / base:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
