"""Milliseconds per generative training step of the ID decoder, on the shapes of a 10k-item
index (the retriever at its default size, MiniLM's 6 layers of 384, batch 64).

    .venv/bin/python bench/decoder_step.py --repeats 5 [--json]

One step is what ``train_generative`` does per caption batch: the memory from cached encoder
layers, the ID loss with R-Drop, the bridge's InfoNCE against every item, backward, clip and
AdamW. Also times one trie-constrained beam search of 32 queries (beam 10) over the IDs.
Run it at two commits (``git worktree``) to compare; nothing else should run beside it.
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


def time_steps(decoder, emb, targets, steps: int, batch: int, tokens: int) -> float:
    """Median ms of ``steps`` training steps on caption batches."""
    opt = torch.optim.AdamW(decoder.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    decoder.train()
    times = []
    for _ in range(steps):
        layers, pad, items = caption_batch(batch, tokens, len(emb), gen)
        t = time.perf_counter()
        memory, mpad, q = decoder.memory_from_text(layers, pad)
        loss = id_loss(decoder, memory, mpad, targets[items], 0.5)
        loss = loss + F.cross_entropy((q @ emb.T) / 0.05, items)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def time_beam_search(decoder, targets, rounds: int, tokens: int) -> float:
    """Median ms of one trie-constrained beam search of 32 queries (beam 10) over the IDs."""
    trie = Trie(np.unique(targets.numpy(), axis=0))
    gen = torch.Generator().manual_seed(2)
    decoder.eval()
    layers, pad, _ = caption_batch(32, tokens, 1, gen)
    times = []
    with torch.no_grad():
        memory, mpad, _ = decoder.memory_from_text(layers, pad)
        for _ in range(rounds):
            t = time.perf_counter()
            constrained_beam_search(decoder, memory, mpad, trie, 10)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs; the median of their medians")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=20, help="caption tokens (longest in batch)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    step, beam = [], []
    for r in range(args.repeats):
        decoder, emb, targets = build(args.items, seed=r)
        step.append(time_steps(decoder, emb, targets, args.steps, args.batch, args.tokens))
        beam.append(time_beam_search(decoder, targets, 5, args.tokens))
    out = {
        "train_step_ms": round(statistics.median(step), 1),
        "train_step_ms_runs": [round(x, 1) for x in step],
        "beam_search_ms": round(statistics.median(beam), 1),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
