"""Wall time of the small commands as a user runs them (a fresh `ace` process each time) on a
small published store: versions, sources, audit, verify, eval (stored), query; the issue's
bars are 1 s for the read commands and 3 s for `ace query`. The reference in the same run is
`python -c pass` (the interpreter's own start-up) and `python -c "import torch"`.

    .venv/bin/python bench/commands.py [--repeats 5]

Builds its store under a temporary folder first (sample corpus, random-weight encoders)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = {"train": {"epochs": 3, "dense": {"epochs": 3}}, "ids": {"rqvae": {"max_epochs": 3}},
        "embed": {"image": {"model": "ace-tiny-vit", "pretrained": "random"},
                  "audio": {"checkpoint": "random"}}}  # fmt: skip

SMOKE = ["--repeats", "1"]


def _run(argv: list[str]) -> float:
    env = {**os.environ, "PREFECT_API_URL": ""}
    t = time.perf_counter()
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {p.stderr[-500:]}")
    return took


def _store(work: Path) -> Path:
    ace = [sys.executable, "-m", "ace_index.flows.cli"]
    _run([*ace, "sample-corpus", str(work / "corpus")])
    (work / "fast.json").write_text(json.dumps(FAST))
    store = work / "store"
    _run([*ace, "index", str(work / "corpus"), "--store", str(store),
          "--config", str(work / "fast.json")])  # fmt: skip
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = str(_store(Path(tmp)))
        ace = [sys.executable, "-m", "ace_index.flows.cli"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "ace versions": [*ace, "versions", "--store", store],
            "ace sources list": [*ace, "sources", "list", "--store", store],
            "ace audit --from v000001 --to v000001": [
                *ace, "audit", "--store", store, "--from", "v000001", "--to", "v000001"],
            "ace verify": [*ace, "verify", "--store", store],
            "ace eval": [*ace, "eval", "--store", store],
            "ace query 'three red circles'": [*ace, "query", "three red circles", "--store", store],
        }  # fmt: skip
        print("| command | median s | min s | max s |\n|---|---|---|---|")
        for name, argv in commands.items():
            times = [_run(argv) for _ in range(args.repeats)]
            print(f"| `{name}` | {statistics.median(times):.2f} | {min(times):.2f} | "
                  f"{max(times):.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
