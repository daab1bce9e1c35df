"""R@1 against training steps, recorded during a fit (issue 22 part 3). Used by
bench/fused_protocols.py --curve; not a test.

Wraps ``ace_core.retrieval.fit.train_generative`` for one fit: after every epoch it records
the training seconds so far (its own evaluations not counted), the steps and examples per item
so far, the R@1 of what training validates on the version's validation queries (pure
generation as served: held-out captions of captioned items, so the seen protocol's curve) and,
when given the protocol's unseen queries, the zero-shot path's R@1 on them (the decoder as it
is at that epoch).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

import ace_core.retrieval.fit as fit_module
from ace_core.retrieval.constrained_generation import Trie
from ace_core.retrieval.zero_shot import text_spaces, zero_shot_search


@contextmanager
def recording(curve: list, unseen=None, towers=None, modalities=None, dim=None, echo=False):
    """Fill ``curve`` with {"epoch", "seconds", "val R@1", "unseen R@1"?} rows while a fit
    runs inside the block. ``unseen``: [(query, row)] scored through the zero-shot path.
    ``echo``: print each row as it comes (a cut run keeps its curve)."""
    original = fit_module.train_generative

    def wrapped(**kw):
        decoder, emb, id_tokens = kw["decoder"], kw["item_emb"], kw["id_tokens"]

        def trie_of(rows):
            plain = Trie(id_tokens[rows])
            return plain.tie(emb, rows) if decoder.tied else plain

        spaces = text_spaces(modalities, id_tokens, towers, trie_of) if unseen else None
        started, own = time.perf_counter(), 0.0

        def progress(epoch, row):
            nonlocal own
            t = time.perf_counter()
            point = {"epoch": epoch, "seconds": round(t - started - own, 1),
                     "steps": row.get("steps"),
                     "examples per item": round(row.get("examples", 0) / len(emb), 2)}
            if "val" in row:
                point["val R@1"] = row["val"]["R@1"]
            if unseen:
                decoder.eval()
                texts, gold = [q for q, _ in unseen], [g for _, g in unseen]
                hits = zero_shot_search(decoder, spaces, texts, dim, 10, 10)
                found = [bool(h) and h[0][0] == g for h, g in zip(hits, gold)]
                point["unseen R@1"] = float(np.mean(found))
                decoder.train()
            curve.append(point)
            if echo:
                print(f"curve point: {point}", flush=True)
            own += time.perf_counter() - t

        kw["progress"] = progress
        return original(**kw)

    fit_module.train_generative = wrapped
    try:
        yield curve
    finally:
        fit_module.train_generative = original


def print_curve(name: str, curve: list) -> None:
    """One line per epoch: its steps, examples per item and training seconds so far."""
    for p in curve:
        got = ", ".join(f"{k} {p[k]:.3f}" for k in ("val R@1", "unseen R@1") if k in p)
        print(f"curve {name}: epoch {p['epoch']} step {p['steps']} "
              f"({p['examples per item']:.1f} examples per item) {p['seconds']:.0f} s: {got}")
