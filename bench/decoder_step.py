"""Milliseconds per generative training step of the ID decoder, on the shapes of a 10k-item
index (the retriever at its default size, MiniLM's 6 layers of 384, batch 64).

    .venv/bin/python bench/decoder_step.py --repeats 5 [--json]
    .venv/bin/python bench/decoder_step.py --trained STORE [--flush-denormals]

One step is what ``train_generative`` does per caption batch: the memory from cached encoder
layers, the ID loss with R-Drop, the bridge's InfoNCE against every item, backward, clip and
AdamW. Also times one trie-constrained beam search of 32 queries (beam 10) over the IDs.
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
from ace_core.retrieval.training import id_loss  # noqa: E402


def build(items: int, seed: int = 0):
    torch.manual_seed(seed)
    vocab = Vocab(n_coarse=71, levels=2, codebook_size=64, n_suffix=8)
    decoder = IDDecoder(RetrieverConfig(), vocab, enc_hidden=384, n_enc_layers=6, item_dim=64)
    emb = F.normalize(torch.randn(items, 64), dim=-1)
    targets = torch.stack(
        [
            torch.randint(2, 73, (items,)),
            torch.randint(vocab.fine_offset(0), vocab.fine_offset(1), (items,)),
            torch.randint(vocab.fine_offset(1), vocab.suffix_offset, (items,)),
            torch.randint(vocab.suffix_offset, vocab.size, (items,)),
        ],
        dim=1,
    )
    return decoder, emb, targets


def caption_batch(batch: int, tokens: int, items: int, gen: torch.Generator):
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
            from query.loaded import load_version

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
    as ``train_generative`` runs them (fused AdamW; bf16 autocast on CUDA)."""
    decoder, emb, targets = w.decoder, w.emb, w.targets
    opt = torch.optim.AdamW(decoder.parameters(), lr=2e-3, fused=True)
    decoder.train()
    times = []
    for _ in range(warm_up + steps):
        layers, pad, items = w.next_batch()
        w.sync()
        t = time.perf_counter()
        with autocast(w.device):
            memory, mpad, q = decoder.memory_from_text(layers, pad)
            loss = id_loss(decoder, memory, mpad, targets[items], 0.5)
            loss = loss + F.cross_entropy((q @ emb.T).float() / 0.05, items)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        w.sync()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[warm_up:])


def time_beam_search(w: Workload, rounds: int) -> float:
    """Median ms of one trie-constrained beam search of 32 queries (beam 10) over the IDs."""
    trie = Trie(np.unique(w.targets.cpu().numpy(), axis=0))
    w.decoder.eval()
    layers, pad, _ = w.next_batch()
    times = []
    with torch.no_grad():
        memory, mpad, _ = w.decoder.memory_from_text(layers[:, :32], pad[:32])
        for _ in range(rounds):
            w.sync()
            t = time.perf_counter()
            constrained_beam_search(w.decoder, memory, mpad, trie, 10)
            w.sync()
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs; the median of their medians")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=20, help="caption tokens (longest in batch)")
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
