"""The same answers before and after a change of the query wing (issue 41: "the CLI outputs
and the API responses stay the same"). Not a test.

    .venv/bin/python -m bench query_parity [--old 9f2e750] [--images 40 --audio 12 --videos 6]

Extracts commit ``--old`` beside this checkout, builds a small store with the old code (a
sample corpus, the tiny aligned encoders, a short fit), then asks the old and the current
code the same questions about that store: ``/api/search`` of both services (each query on
every path, and with a modality, a date sort, keywords and k=3), and ``ace query --json`` of
both CLIs for a few of them. It compares what a user reads: the path that answered, each
result's item, ID and score (to 4 decimals), and the keyword results. Prints a table of
requests compared and identical, and the first differences.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "models/tiny"
PATHS = ("auto", "generative", "captions", "zero-shot", "both", "dense")
VARIANTS = ({"modality": "image"}, {"sort": "date"}, {"keywords": "true"}, {"k": "3"})
NOVEL = ("something red and round", "a loud noise at night")
FAST = {"train": {"epochs": 4, "examples_per_item": None, "dense": {"epochs": 4}},
        "ids": {"rqvae": {"max_epochs": 3}}}  # fmt: skip

SMOKE = ["--old", "HEAD", "--images", "8", "--audio", "3", "--videos", "2", "--queries", "2"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", default="9f2e750", help="the commit before the change")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--audio", type=int, default=12)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--queries", type=int, default=6, help="captions of the corpus asked")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old = extract(args.old, work / "old")
        codes = {"old": (old, old_module(old)), "new": (ROOT, "ace_index.flows.cli")}
        corpus, store = work / "corpus", work / "store"
        ace(codes["new"], "sample-corpus", str(corpus), "--images", str(args.images),
            "--audio", str(args.audio), "--videos", str(args.videos))  # fmt: skip
        (work / "fast.json").write_text(json.dumps(FAST))
        ace(codes["old"], "index", str(corpus), "--store", str(store), *encoders(),
            "--config", str(work / "fast.json"))  # fmt: skip
        texts = questions(corpus, args.queries)
        compared = compare_services(codes, store, texts) + compare_clis(codes, store, texts[:2])
    report(compared, args.old)


def extract(commit: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def old_module(old: Path) -> str:
    """The CLI's module in that tree (before the package names of issue 43: ``flows.cli``)."""
    return "ace_index.flows.cli" if (old / "ace_index").is_dir() else "flows.cli"


def encoders() -> list[str]:
    return ["--image-model", "ace-tiny-clip", "--image-weights",
            str(ROOT / TINY / "ace-tiny-clip.safetensors"), "--audio-model", "ace-tiny-clap",
            "--audio-checkpoint", str(ROOT / TINY / "ace-tiny-clap.safetensors")]  # fmt: skip


def env(code_root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code_root), "PREFECT_API_URL": ""}


def ace(code, *argv: str) -> str:
    root, module = code
    p = subprocess.run([sys.executable, "-m", module, *argv], cwd=root, env=env(root),
                       capture_output=True, text=True, timeout=1800)  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(f"{module} {argv[0]} ({root}) failed: {p.stderr[-800:]}")
    return p.stdout


def questions(corpus: Path, n: int) -> list[str]:
    """``n`` of the corpus's captions, spread over its captions.jsonl, and the NOVEL texts."""
    sys.path.insert(0, str(ROOT))
    from bench import spread_captions

    return spread_captions(corpus, n) + list(NOVEL)


def compare_services(codes, store: Path, texts: list[str]) -> list[tuple]:
    servers = {name: Service(code, store) for name, code in codes.items()}
    try:
        requests = [{"q": t, "path": p} for t in texts for p in PATHS]
        requests += [{"q": t, **v} for t in texts for v in VARIANTS]
        return [
            ("api", r, *(answer(s.get(r)) for s in (servers["old"], servers["new"])))
            for r in requests
        ]
    finally:
        for s in servers.values():
            s.stop()


def compare_clis(codes, store: Path, texts: list[str]) -> list[tuple]:
    out = []
    for t in texts:
        for path in ("auto", "generative"):
            argv = ("query", t, "--store", str(store), "--json", "--path", path)
            got = [answer(json.loads(ace(codes[name], *argv))) for name in ("old", "new")]
            out.append(("cli", {"q": t, "path": path}, *got))
    return out


def answer(payload: dict) -> dict:
    """What a user reads of a search: the path, the ranked results, the keyword results."""

    def rows(results):
        return [(r["item_id"], r["sid"], round(float(r["score"]), 4)) for r in results or []]

    return {"path": payload.get("path"), "results": rows(payload.get("results")),
            "keywords": rows(payload.get("keyword_results"))}  # fmt: skip


class Service:
    """``ace serve`` of one code tree on a free loopback port."""

    def __init__(self, code, store: Path):
        root, module = code
        self.port = free_port()
        argv = [sys.executable, "-m", module, "serve", "--store", str(store),
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=root, env=env(root), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        self.wait()

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.get({"q": "warm-up"})
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the service on port {self.port} exited") from None
                time.sleep(1)
        raise SystemExit(f"the service on port {self.port} did not answer in {timeout} s")

    def get(self, params: dict) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/search?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=120) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(compared: list[tuple], old: str) -> None:
    print(f"\n| asked through | requests | results read | identical to `{old}` |")
    print("|---|---|---|---|")
    for via in ("api", "cli"):
        rows = [c for c in compared if c[0] == via]
        same = sum(a == b for _, _, a, b in rows)
        read = sum(len(b["results"]) + len(b["keywords"]) for _, _, _, b in rows)
        print(f"| {via} | {len(rows)} | {read} | {same} |")
    differing = [(r, a, b) for _, r, a, b in compared if a != b]
    print(f"\n{len(differing)} of {len(compared)} answers differ")
    for r, a, b in differing[:5]:
        print(f"- {r}:\n  old {a}\n  new {b}")


if __name__ == "__main__":
    main()
