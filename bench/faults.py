"""The fault matrix: runs tests/faults (every case of the faults issues that is quick), per
fault class, and the slow cases here, and prints how many held. Not a test.

  .venv/bin/python bench/faults.py [--captions 10000] [--fault-tests tests/faults]

Slow cases: a benchmark-sized caption set (>= 10,000 captions) trains, both with its caption
features cached and with a cache too small for them (recomputed per batch, used in backward).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ace_index.tasks import _env  # noqa: E402,F401

SMOKE = [
    "--captions",
    "120",
    "--fault-tests",
    "tests/faults/test_commands.py::test_an_unknown_option_shows_the_subcommands_usage",
]

FAULT_CLASSES = {
    "test_fault_matrix": "round one: damaged files, publish window, locks, disks, captions",
    "test_store_upkeep": "lost LATEST, rollback, prune, manifest checksum, verify --all",
    "test_input_faults": "store indexing itself, hangs, config schema, store files, imports",
    "test_service_faults": "files outside the corpus, paths in responses, token, headers",
    "test_commands": "small commands, interrupts, empty folders, evaluation of a served path",
    "test_crash_windows": "round three: killed prune, publish, rollback; stale health; sources",
    "test_media_cache_faults": "round three: planted links and FIFOs, damaged renditions, codecs",
}


def matrix(tests: list[str]) -> tuple[list[tuple[str, int, int]], float]:
    """(class, held, total) per fault module of ``tests`` (pytest paths under the repository:
    tests/faults), and the seconds it took."""
    import tempfile
    import xml.etree.ElementTree as ET

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
             f"--junitxml={report}"],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        cases = ET.parse(report).getroot().iter("testcase")
        counts: dict[str, list[int]] = {}
        for case in cases:
            module = case.get("classname", "").split(".")[-1]
            failed = any(c.tag in ("failure", "error") for c in case)
            skipped = any(c.tag == "skipped" for c in case)
            row = counts.setdefault(module, [0, 0])
            row[0] += not (failed or skipped)
            row[1] += not skipped
    rows = [(m, held, total) for m, (held, total) in sorted(counts.items())]
    return rows, time.perf_counter() - t


def many_captions(n_captions: int, stored: bool) -> tuple[bool, str]:
    """Train one epoch on at least ``n_captions`` training captions (5 per item; the
    protocol holds one test and one validation caption of each item out), their features in
    memory or (``stored``) memory-mapped from a feature store in a temporary folder."""
    import tempfile

    import numpy as np

    from ace_core.ids.kmeans import KMeansConfig
    from ace_core.ids.rqvae import RQVAEConfig
    from ace_core.ids.semantic_ids import SemanticIDConfig, fit_semantic_ids, l2n
    from ace_core.media.captions import CaptionEntry
    from ace_core.retrieval.dense import DenseTrainConfig
    from ace_core.retrieval.fit import fit_retrieval
    from ace_core.retrieval.text_encoder import default_encoder_path
    from ace_core.retrieval.training import TrainConfig
    from ace_index.storage.formats.text_features import feature_source

    per_item = 5
    n_items = -(-n_captions // (per_item - 2))
    rng = np.random.default_rng(0)
    ids = [f"{i:064x}" for i in range(n_items)]
    x = l2n(rng.standard_normal((n_items, 64)).astype(np.float32))
    words = ["red", "blue", "green", "circle", "square", "loud", "soft", "moving", "still"]
    caps = {
        i: CaptionEntry([" ".join(rng.choice(words, 6)) + f" {n} {k}" for k in range(per_item)])
        for n, i in enumerate(ids)
    }
    cfg = SemanticIDConfig(kmeans=KMeansConfig(k=32), rqvae=RQVAEConfig(max_epochs=2))
    indexer, sids = fit_semantic_ids(ids, x, cfg)
    train = TrainConfig(
        epochs=1, eval_every=1, max_val_queries=64, dense=DenseTrainConfig(epochs=1)
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as staging:
        features = feature_source(staging, default_encoder_path()) if stored else None
        try:
            fit = fit_retrieval(ids, x, sids, indexer, caps, train=train, features=features)
        except Exception as e:  # noqa: BLE001 - a bench row, not a crash
            return False, f"{type(e).__name__}: {str(e)[:120]}"
    q = fit.eval["queries"]
    total = q["train"] + q["val"] + q["test"]
    took = time.perf_counter() - t
    return (
        True,
        f"{total} captions ({q['train']} training), {n_items} items, 1 epoch in {took:.0f} s",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captions", type=int, default=10_000)
    ap.add_argument(
        "--fault-tests",
        nargs="+",
        default=["tests/faults"],
        help="the pytest paths the matrix runs (default: every fault test)",
    )
    args = ap.parse_args()
    classes, secs = matrix(args.fault_tests)
    rows = [
        (f"{FAULT_CLASSES.get(m, m)} ({m}.py)", held == total, f"{held}/{total} held")
        for m, held, total in classes
    ]
    held, total = sum(c[1] for c in classes), sum(c[2] for c in classes)
    print(f"tests/faults: {held}/{total} held in {secs:.0f} s", file=sys.stderr)
    for stored, label in ((False, "features in memory"), (True, "features memory-mapped")):
        ok, note = many_captions(args.captions, stored)
        rows.append((f">= {args.captions} training captions, {label}", ok, note))
        held, total = held + ok, total + 1
    print("| case | held | detail |\n|---|---|---|")
    for name, ok, note in rows:
        print(f"| {name} | {'yes' if ok else 'NO'} | {note} |")
    print(f"\nfault matrix: {held} of {total} cases held")


if __name__ == "__main__":
    main()
