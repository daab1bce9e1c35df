"""Tied output embeddings of the ID tree: what a query near an item's embedding scores before
any memorising (issue 40; Tied-Atomic, arXiv 2306.11397, split along a semantic ID).

Every node of a trie of IDs (a coarse cluster, a prefix of fine codes, a whole ID) stands for
the items below it, and its tied output vector is their mean embedding; a whole ID's is the
item's own embedding. A query vector ``q`` in the items' space (the towers' embedding of a
text, an example's embedding, or the decoder's bridge from caption features) scores a node by
``q . mean`` = the mean of its items' inner products with ``q``. The decoder adds this score,
scaled per depth, to its learned logit for each allowed next token, so the beam descends
towards the items near ``q`` from the first training step; the learned part adds what the
captions taught it.

A trie sorts its IDs, so each node's items are one contiguous range of its leaves. Means of
nodes over ``big`` items are kept (a few thousand vectors at 100k items); a smaller node's mean
is taken from its items' vectors when it is scored, so nothing grows with the number of nodes.
"""

from __future__ import annotations

import numpy as np
import torch

BIG_NODE = 2  # nodes with more items keep their mean; smaller ones are averaged when scored


class TrieVectors:
    """Tied vectors of one trie's nodes, from its leaves' item embeddings.

    ``first[d]``: the first leaf of each depth-``d`` node (a node at depth d is a prefix of
    d + 1 tokens); its leaves are ``first[d][j] .. first[d][j + 1]`` (the last: to the end)."""

    def __init__(self, first: list[np.ndarray], leaf_rows: np.ndarray, emb: torch.Tensor):
        self.emb = emb  # (items, D) float32; leaf j's vector is emb[leaf_rows[j]]
        self.leaf_rows = torch.from_numpy(np.asarray(leaf_rows, np.int64))
        n = len(leaf_rows)
        self.start, self.size, self.kept, self.kept_mean = [], [], [], []
        for f in first:
            size = np.diff(np.append(f, n))
            self.start.append(torch.from_numpy(f.astype(np.int64)))
            self.size.append(torch.from_numpy(size.astype(np.int64)))
            big = np.flatnonzero(size > BIG_NODE)
            slot = np.full(len(f), -1, np.int64)
            slot[big] = np.arange(len(big))
            self.kept.append(torch.from_numpy(slot))
            self.kept_mean.append(self._means(f[big], size[big]))

    def _means(self, starts: np.ndarray, sizes: np.ndarray) -> torch.Tensor:
        if not len(starts):
            return self.emb.new_zeros((0, self.emb.shape[1]))
        ranges = np.concatenate([np.arange(s, s + k) for s, k in zip(starts, sizes)])
        rows = self.leaf_rows[torch.from_numpy(ranges)]
        owner = torch.repeat_interleave(torch.arange(len(starts)), torch.from_numpy(sizes))
        sums = self.emb.new_zeros((len(starts), self.emb.shape[1]))
        sums.index_add_(0, owner, self.emb[rows])
        return sums / torch.from_numpy(sizes).to(sums.dtype)[:, None]

    def scores(self, q: torch.Tensor, owner: torch.Tensor, depth: int, nodes) -> torch.Tensor:
        """q (B, D) query vectors; ``nodes`` (R,) depth-``depth`` nodes, each scored for query
        ``owner`` (R,) -> (R,) the mean of the node's items' inner products with its query."""
        nodes, owner = torch.as_tensor(nodes).cpu(), torch.as_tensor(owner).to(q.device)
        out = q.new_zeros(len(nodes))
        slot = self.kept[depth][nodes]
        big = (slot >= 0).nonzero().flatten()
        if len(big):
            used, which = torch.unique(slot[big], return_inverse=True)
            per_query = q @ self.kept_mean[depth][used].to(q.device, q.dtype).T  # (B, used)
            big = big.to(q.device)
            out[big] = per_query[owner[big], which.to(q.device)].to(out.dtype)  # autocast
        small = (slot < 0).nonzero().flatten()
        if len(small):
            mine = q[owner[small.to(q.device)]]
            out[small.to(q.device)] = self._small(mine, depth, nodes[small]).to(out.dtype)
        return out

    def _small(self, q: torch.Tensor, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """q (R, D) against nodes of at most BIG_NODE items each, from the items' vectors."""
        start, size = self.start[depth][nodes], self.size[depth][nodes]
        offs = torch.arange(int(size.max()))
        valid = (offs[None] < size[:, None]).to(q.device, q.dtype)
        leaf = (start[:, None] + offs[None]).clamp(max=len(self.leaf_rows) - 1)
        vec = self.emb[self.leaf_rows[leaf]].to(q.device, q.dtype)  # (R, width, D)
        dots = torch.einsum("rwd,rd->rw", vec, q) * valid
        return dots.sum(1) / size.to(q.device, q.dtype)


def group_logsumexp(x: torch.Tensor, groups: torch.Tensor, n: int) -> torch.Tensor:
    """logsumexp of ``x`` within each of ``n`` groups (``groups``: each entry's group) -> (n,)."""
    top = x.new_full((n,), float("-inf")).scatter_reduce(0, groups, x.detach(), "amax")
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    sums = x.new_zeros(n).index_add(0, groups, (x - top[groups]).exp())
    return top + sums.log()


def tied_step_scores(
    decoder, learned, q, owner, trie, depth: int, rows, children, offsets=None
) -> torch.Tensor:
    """Log-probabilities of the allowed next tokens of R decoding rows: learned logits plus
    tied node scores, normalised over each row's allowed tokens. At the last depth the item's
    own inner product (with its trained offset added to its embedding, ``offsets``: the
    captions path's), weighted by ``tied_leaf``, is added unnormalised, so whole IDs are
    ranked by it as Tied-Atomic's item vectors rank them.

    learned (C,): the decoder's logit of each candidate (row ``rows[c]``, its token);
    ``children`` (C,): the candidate's node; q (B, D) query vectors; ``owner`` (R,): each
    row's query."""
    rows = torch.as_tensor(rows, device=learned.device)
    node_score = trie.vectors.scores(q, owner[rows], depth, children)
    logit = learned.float() + decoder.tied_log_scale[depth].exp() * node_score
    step = logit - group_logsumexp(logit, rows, int(owner.shape[0]))[rows]
    if depth < trie.length - 1:
        return step
    item_score = node_score  # a whole ID's node holds one item
    if offsets is not None:
        items = trie.vectors.leaf_rows[torch.as_tensor(children)].to(q.device)
        item_score = item_score + offsets.leaf_score(q[owner[rows]], items)
    return step + decoder.cfg.tied_leaf * item_score


def tied_cross_entropy(decoder, logits, q, trie, gold_nodes: np.ndarray) -> torch.Tensor:
    """Training loss of a tied decoder: at every depth, the cross-entropy of the gold token
    among the tokens the trie allows after the gold prefix (learned logits plus tied node
    scores), as the beam search normalises them.

    logits (B, N, V) learned; q (B, D); gold_nodes (B, N): the gold ID's node at each depth."""
    B, N, _ = logits.shape
    total = logits.new_zeros((), dtype=torch.float32)
    for d in range(N):
        parents = gold_nodes[:, d - 1] if d else np.zeros(B, np.int64)
        rows, tokens, children = trie.child_nodes(d, parents)
        r = torch.from_numpy(rows).to(logits.device)
        learned = logits[r, d, torch.from_numpy(tokens).to(logits.device)]
        node_score = trie.vectors.scores(q, r, d, children)
        logit = learned.float() + decoder.tied_log_scale[d].exp() * node_score
        gold = torch.from_numpy(children == gold_nodes[rows, d]).to(logits.device)
        # one gold candidate per row, in row order (the trie lists children row by row)
        total = total + (group_logsumexp(logit, r, B) - logit[gold]).mean()
    return total / N
