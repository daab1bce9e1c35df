"""R@1 against training steps, recorded during a fit (issue 22 part 3). Used by
bench/fused_protocols.py --curve; not a test.

Wraps ``ace_core.retrieval.fit.train_generative`` for one fit: after every epoch it records
the training seconds so far (its own evaluations not counted), the captions path's R@1 on the
version's validation queries (what training validates; held-out captions of captioned items,
so the seen protocol's curve) and, when given the protocol's unseen queries, the zero-shot
path's R@1 on them (the decoder as it is at that epoch).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

import ace_core.retrieval.fit as fit_module
from ace_core.retrieval.zero_shot import text_spaces, zero_shot_search


@contextmanager
def recording(curve: list, unseen=None, towers=None, modalities=None, dim=None, echo=False):
    """Fill ``curve`` with {"epoch", "seconds", "val R@1", "unseen R@1"?} rows while a fit
    runs inside the block. ``unseen``: [(query, row)] scored through the zero-shot path.
    ``echo``: print each row as it comes (a cut run keeps its curve)."""
    original = fit_module.train_generative

    def wrapped(decoder, feats, items, emb, id_tokens, trie, cfg, **kw):
        spaces = text_spaces(modalities, id_tokens, towers) if unseen else None
        started, own = time.perf_counter(), 0.0

        def progress(epoch, row):
            nonlocal own
            t = time.perf_counter()
            point = {"epoch": epoch, "seconds": round(t - started - own, 1)}
            if "val" in row:
                point["val R@1"] = row["val"]["R@1"]
            if unseen:
                decoder.eval()
                texts, gold = [q for q, _ in unseen], [g for _, g in unseen]
                hits = zero_shot_search(decoder, spaces, texts, dim, 10, 10)
                point["unseen R@1"] = float(np.mean([bool(h) and h[0][0] == g
                                                     for h, g in zip(hits, gold)]))  # fmt: skip
                decoder.train()
            curve.append(point)
            if echo:
                print(f"curve point: {point}", flush=True)
            own += time.perf_counter() - t

        kw["progress"] = progress
        return original(decoder, feats, items, emb, id_tokens, trie, cfg, **kw)

    fit_module.train_generative = wrapped
    try:
        yield curve
    finally:
        fit_module.train_generative = original


def print_curve(name: str, curve: list, steps: int) -> None:
    """One line per epoch; steps are the fit's total spread over its training seconds."""
    total = max(p["seconds"] for p in curve) or 1.0
    for p in curve:
        at = round(steps * p["seconds"] / total)
        got = ", ".join(f"{k} {p[k]:.3f}" for k in ("val R@1", "unseen R@1") if k in p)
        print(f"curve {name}: epoch {p['epoch']} ~step {at} {p['seconds']:.0f} s: {got}")
