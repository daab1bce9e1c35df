"""Training losses: the decoder's ID loss (ACE: cross-entropy + R-Drop) and the InfoNCE
shared by the decoder's bridge and the dense baseline."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ace_core.retrieval.model import BOS
from ace_core.retrieval.tied import tied_cross_entropy


def info_nce(
    q, emb, items, negatives: int | None, temperature=0.05, offsets: nn.Embedding | None = None
) -> torch.Tensor:
    """InfoNCE of query vectors ``q`` (B, D) against item embeddings ``emb`` (n, D), the
    right items ``items`` (B,): over every item, or, above ``negatives`` items, over the
    batch's own items and a uniform sample of that many others, so a step costs the same at
    any corpus size (a sampled item that is a row's own is masked out of its negatives).
    ``offsets``: trained per-item vectors added to the embeddings (the decoder's). The
    logits' product runs in the candidates' dtype (a bfloat16 ``emb``: the dense baseline's
    mixed precision), the softmax in float32."""
    if negatives is None or len(emb) <= negatives:
        return F.cross_entropy(_logits(q, _vectors(emb, None, offsets), temperature), items)
    sample = torch.randint(0, len(emb), (negatives,), device=emb.device)
    logits = _logits(q, _vectors(emb, torch.cat([items, sample]), offsets), temperature)
    logits[:, len(items) :].masked_fill_(sample[None] == items[:, None], -1e4)
    return F.cross_entropy(logits, torch.arange(len(items), device=emb.device))


def _logits(q, vectors, temperature) -> torch.Tensor:
    """q . vectors / temperature; in bfloat16 the temperature scales ``q`` (one small product
    instead of a pass over the (B, n) logits)."""
    if vectors.dtype == torch.float32:
        return (q @ vectors.T).float() / temperature
    return ((q / temperature).to(vectors.dtype) @ vectors.T).float()


def _vectors(emb, rows, offsets) -> torch.Tensor:
    """The candidates' vectors: embeddings (all, or ``rows``), plus their offsets."""
    out = emb if rows is None else emb[rows]
    if offsets is None:
        return out
    return out + offsets(torch.arange(len(emb), device=emb.device) if rows is None else rows)


def id_loss(
    decoder, memory, pad, targets, rdrop_weight: float, tied: tuple | None = None
) -> torch.Tensor:
    """CE on the ID tokens (+ R-Drop KL between two dropout passes). ``tied`` (query vectors,
    trie, gold nodes): a tied decoder's CE among the tokens the trie allows
    (ace_core.retrieval.tied); otherwise over the whole vocabulary."""
    bos = torch.full((targets.shape[0], 1), BOS, dtype=torch.long, device=targets.device)
    inp = torch.cat([bos, targets[:, :-1]], dim=1)
    prepared = decoder.prepare(memory, pad)  # memory keys and values, shared by both passes

    def cross_entropy(logits):
        if tied is not None:
            return tied_cross_entropy(decoder, logits, *tied)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    logits = decoder.decode(prepared, inp)
    ce = cross_entropy(logits)
    if rdrop_weight <= 0:
        return ce
    logits2 = decoder.decode(prepared, inp)
    ce2 = cross_entropy(logits2)
    lp, lq = F.log_softmax(logits.float(), -1), F.log_softmax(logits2.float(), -1)
    kl = (
        0.5
        * (
            F.kl_div(lp, lq, log_target=True, reduction="batchmean")
            + F.kl_div(lq, lp, log_target=True, reduction="batchmean")
        )
        / targets.shape[1]
    )
    return 0.5 * (ce + ce2) + rdrop_weight * kl
