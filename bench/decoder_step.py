"""Milliseconds per generative training step of the ID decoder, on the shapes of a 10k-item
index (the retriever at its default size, MiniLM's 6 layers of 384, batch 64).

    .venv/bin/python bench/decoder_step.py --repeats 5 [--json]
    .venv/bin/python bench/decoder_step.py --trained STORE [--flush-denormals]

One step is what ``train_generative`` does per caption batch (``train_steps.step_loss`` and
its optimisers): the memory from the encoder layers (one pooled token per layer, the
default), the tied ID loss with R-Drop, the bridge's InfoNCE (sampled negatives above 8,192
items) with the per-item offsets, backward, clip, AdamW and SparseAdam. Also times one
trie-constrained beam search of 32 queries (beam 10) over the IDs.
By default the decoder has random weights and the encoder layers are random; ``--trained``
takes the decoder, items, IDs and captions of a store's latest version instead (a trained
decoder's gradients hold denormal floats; ``--flush-denormals`` sets flush-to-zero first, as
the flows do). Run it at two commits (``git worktree``) to compare; nothing else beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from ace_core.retrieval._torch import autocast  # noqa: E402
from ace_core.retrieval.constrained_generation import Trie, constrained_beam_search  # noqa: E402
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab  # noqa: E402
from ace_core.retrieval.train_steps import Optimizer, StepTargets, step_loss  # noqa: E402
from ace_core.retrieval.training import TrainConfig  # noqa: E402
from bench.timing import median_time  # noqa: E402

SMOKE = ["--repeats", "1", "--steps", "1", "--items", "500"]


def build(items: int, seed: int = 0):
    """A decoder over ``items`` random unit embeddings with distinct random IDs (71 coarse
    clusters, two levels of 64 codes; an ID drawn twice gets the next suffix)."""
    torch.manual_seed(seed)
    emb = F.normalize(torch.randn(items, 64), dim=-1)
    raw = np.stack([np.random.default_rng(seed).integers(0, n, items) for n in (71, 64, 64)], 1)
    _, group = np.unique(raw, axis=0, return_inverse=True)
    suffix, seen = np.zeros(items, np.int64), {}
    for i, g in enumerate(group.ravel().tolist()):
        suffix[i], seen[g] = seen.get(g, 0), seen.get(g, 0) + 1
    vocab = Vocab(n_coarse=71, levels=2, codebook_size=64, n_suffix=int(suffix.max()) + 1)
    decoder = IDDecoder(
        RetrieverConfig(), vocab, enc_hidden=384, n_enc_layers=6, item_dim=64, n_items=items
    )
    targets = torch.from_numpy(vocab.encode(np.concatenate([raw, suffix[:, None]], 1)))
    return decoder, emb, targets


def caption_batch(batch: int, tokens: int, items: int, gen: torch.Generator):
    """Random encoder layers of ``batch`` captions: ``tokens`` long at most, or one pooled
    token per layer (``tokens`` 1)."""
    layers = torch.randn(6, batch, tokens, 384, generator=gen)
    lengths = torch.randint(tokens // 2, tokens + 1, (batch,), generator=gen)
    pad = torch.arange(tokens)[None, :] >= lengths[:, None]
    return layers, pad, torch.randint(0, items, (batch,), generator=gen)


class Workload:
    """A decoder, its items' embeddings and ID tokens, and caption batches to train on."""

    def __init__(
        self, items: int, seed: int, batch: int, tokens: int, trained: str | None, device="cpu"
    ):
        self.batch, self.tokens, self.gen = batch, tokens, torch.Generator().manual_seed(1)
        self.device = torch.device(device)
        self.feats = None
        if trained is None:
            decoder, emb, targets = build(items, seed)
        else:
            from ace_index.query.loaded import load_version

            vm = load_version(trained)
            m = vm.model
            decoder, emb, targets = m.decoder, torch.from_numpy(m.item_emb), m.id_tokens
            targets = torch.from_numpy(targets)
            pairs = [(c, row) for row, i in enumerate(m.item_ids) for c in vm.captions.get(i, [])]
            pairs = pairs[:: max(1, len(pairs) // 2048)][:2048]
            self.feats = m.features([c for c, _ in pairs])
            self.cap_items = torch.tensor([row for _, row in pairs])
        self.decoder = decoder.to(self.device)
        self.emb, self.targets = emb.to(self.device), targets.to(self.device)

    def next_batch(self):
        if self.feats is None:
            batch = caption_batch(self.batch, self.tokens, len(self.emb), self.gen)
        else:
            b = torch.randint(0, len(self.cap_items), (self.batch,), generator=self.gen)
            batch = (*self.feats.layers(b), self.cap_items[b])
        return tuple(t.to(self.device) for t in batch)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def time_steps(w: Workload, steps: int, warm_up: int = 3) -> float:
    """Median ms of ``steps`` training steps on caption batches (after ``warm_up`` steps),
    as ``train_generative`` runs them (``step_loss``, its optimisers; bf16 autocast on
    CUDA)."""
    decoder, cfg = w.decoder, TrainConfig()
    trie = Trie(w.targets.cpu().numpy()).tie(w.emb.cpu().numpy())
    t = StepTargets.of(decoder, w.emb.cpu().numpy(), w.targets.cpu().numpy(), [], trie, w.device)
    opt = Optimizer(decoder, cfg)
    decoder.train()
    times = []
    for _ in range(warm_up + steps):
        layers, pad, items = w.next_batch()
        feats = _Fixed(layers, pad)
        t.cap_items = items.cpu()
        w.sync()
        start = time.perf_counter()
        with autocast(w.device):
            loss = step_loss(decoder, "cap", torch.arange(len(items)), feats, t, cfg, w.device)
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[warm_up:])


class _Fixed:
    """One batch's features, as TextFeatures.layers gives them."""

    def __init__(self, layers, pad):
        self.value = (layers, pad)

    def layers(self, rows):
        return self.value


def time_beam_search(w: Workload, rounds: int) -> float:
    """Median ms of one trie-constrained beam search of 32 queries (beam 10) over the IDs."""
    trie = Trie(w.targets.cpu().numpy()).tie(w.emb.cpu().numpy())
    w.decoder.eval()
    layers, pad, _ = w.next_batch()
    with torch.no_grad():
        memory, mpad, q = w.decoder.memory_from_text(layers[:, :32], pad[:32])

        def search():
            constrained_beam_search(w.decoder, memory, mpad, trie, 10, query=q)

        return 1000 * median_time(search, rounds, sync=w.sync)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs; the median of their medians")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=1,
                    help="caption tokens per layer (1: pooled, the default; 20: every token)")
    ap.add_argument("--trained", metavar="STORE", help="the decoder of this store's LATEST")
    ap.add_argument("--flush-denormals", action="store_true", help="flush-to-zero first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.flush_denormals:  # before any torch work, as the flows do
        from ace_core.cpu_share import flush_denormals

        flush_denormals()
    step, beam = [], []
    for r in range(args.repeats):
        w = Workload(args.items, r, args.batch, args.tokens, args.trained)
        step.append(time_steps(w, args.steps))
        beam.append(time_beam_search(w, 5))
    out = {
        "train_step_ms": round(statistics.median(step), 1),
        "train_step_ms_runs": [round(x, 1) for x in step],
        "beam_search_ms": round(statistics.median(beam), 1),
        "threads": torch.get_num_threads(),
        "trained": args.trained,
        "flush_denormals": args.flush_denormals,
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
