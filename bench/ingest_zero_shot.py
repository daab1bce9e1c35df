"""Caption-less new items right after an ingest (issue 8, part 5). Not a test.

  .venv/bin/python bench/ingest_zero_shot.py [--seed 5050] [--epochs N]

`ace index` a captioned synthetic corpus with the tiny aligned encoders, then `ace ingest` a
batch whose captions are withheld (tonight's uploads), then `ace eval --queries` twice: one
held-back caption per new item (new-item recall) and one caption per old item (old-item
recall), through the version's default query path and the text-tower dense baseline.
``--epochs N``: every training (the index's, its dense baseline's, the ingest's) capped at N
epochs (default: the index's own settings).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ACE = str(ROOT / ".venv" / "bin" / "ace")
TINY = ROOT / "models" / "tiny"

from ace_core.tiny_encoders import index_args  # noqa: E402

SMOKE = ["--epochs", "1"]


def ace(*argv: str) -> dict:
    out = subprocess.run([ACE, *argv, "--json"], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"ace {' '.join(argv)} failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout)


def queries_file(corpus: Path, out: Path) -> Path:
    lines = []
    for line in (corpus / "captions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        lines.append(json.dumps({"query": rec["captions"][-1], "path": rec["path"]}))
    out.write_text("\n".join(lines) + "\n")
    return out


def epochs_config(tmp: Path, epochs: int | None) -> list[str]:
    """``ace index`` options that cap every training at ``epochs`` (none when None)."""
    if epochs is None:
        return []
    capped = {"epochs": epochs, "examples_per_item": None, "dense": {"epochs": epochs}}
    (tmp / "epochs.json").write_text(json.dumps({"train": capped, "ingest": {"epochs": epochs}}))
    return ["--config", str(tmp / "epochs.json")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=5050)
    ap.add_argument("--epochs", type=int, default=None, help="cap every training at N epochs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-ingest-zs-"))
    corpus, batch, store = tmp / "corpus", tmp / "batch", str(tmp / "store")
    ace("sample-corpus", str(corpus), "--seed", str(args.seed))
    ace("sample-corpus", str(batch), "--seed", str(args.seed + 1),
        "--images", "10", "--audio", "4", "--videos", "2")  # fmt: skip
    new_q = queries_file(batch, tmp / "new.jsonl")
    (batch / "captions.jsonl").unlink()
    old_q = queries_file(corpus, tmp / "old.jsonl")
    weights = index_args(TINY)  # the options `ace tiny-encoders` prints
    v1 = ace("index", str(corpus), "--store", store, *weights, *epochs_config(tmp, args.epochs))
    v2 = ace("ingest", str(batch), "--store", store)
    print(f"index {v1['seconds']:.0f} s, ingest {v2['seconds']:.0f} s ({v2['version']})")
    methods = ("auto", "generative", "text_tower_dense", "dense", "bm25")
    print("\n| items | queries | method | R@1 | R@10 |\n|---|---|---|---|---|")
    for label, q in (("new, caption-less", new_q), ("old, captioned", old_q)):
        r = ace("eval", "--store", store, "--queries", str(q))
        named = {
            "auto": f"auto ({r['path']})",
            "generative": f"generative ({r['generative_path']})",
        }
        for m in methods:
            if r.get(m):
                print(f"| {label} | {r['queries']} | {named.get(m, m)} | {r[m]['R@1']:.3f} | "
                      f"{r[m]['R@10']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
