"""Trie-constrained beam search over semantic IDs, batched over queries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ace_core.retrieval.attention import DecodingState
from ace_core.retrieval.model import BOS
from ace_core.retrieval.tied import TrieVectors, tied_step_scores


class Trie:
    """Prefix tree of equal-length token sequences (GENRE's trie), stored as sorted arrays.

    Level ``d`` holds the distinct prefixes of length ``d + 1`` in sorted order: a node is an
    index into its level, and its children are a contiguous range of the next level. A 1M-ID
    trie is a few arrays of ints (about 100 MB, built by one sort), not millions of dicts, and
    every live beam's allowed tokens come from a few vectorised numpy calls.
    """

    def __init__(self, sequences: np.ndarray):
        seqs = _rows(sequences)
        self.length = int(seqs.shape[1]) if len(seqs) else 0
        order = np.lexsort(seqs.T[::-1]) if self.length else np.zeros(0, np.int64)
        rows = seqs[order]
        self.span = int(rows.max()) + 1 if rows.size else 1  # node * span + token is a key
        self.tokens: list[np.ndarray] = []  # tokens[d]: the last token of each level-d node
        self.keys: list[np.ndarray] = []  # keys[d]: parent * span + token, sorted
        self.child_ptr: list[np.ndarray] = []  # children of level-(d-1) node p: [ptr[p], ptr[p+1])
        self.first: list[np.ndarray] = []  # first[d]: each level-d node's first leaf
        self.vectors: TrieVectors | None = None  # tied node vectors (``tie``)
        starts_prefix = np.zeros(len(rows), bool)
        node_of_row = np.zeros(len(rows), np.int64)  # each row's node at the level above
        n_nodes = 1  # the root
        for d in range(self.length):
            starts_prefix[1:] |= rows[1:, d] != rows[:-1, d]
            starts_prefix[:1] = True
            first = np.flatnonzero(starts_prefix)
            parent = node_of_row[first]
            self.tokens.append(rows[first, d])
            self.keys.append(parent * self.span + rows[first, d])
            self.child_ptr.append(np.searchsorted(parent, np.arange(n_nodes + 1)))
            self.first.append(first)
            node_of_row = np.cumsum(starts_prefix) - 1
            n_nodes = len(first)
        if self.length and n_nodes < len(rows):
            dup = rows[np.flatnonzero(~starts_prefix)[0]]
            raise ValueError(f"duplicate ID in trie: {dup.tolist()}")
        self.leaf_items = order  # leaf node j (the last level) -> the item's row

    def __len__(self) -> int:
        return len(self.leaf_items)

    def tie(self, item_emb: np.ndarray, rows: np.ndarray | None = None) -> Trie:
        """Give the nodes tied vectors (ace_core.retrieval.tied): the item embeddings
        ``item_emb[rows[i]]`` of the IDs this trie was built from (``rows`` None: row i)."""
        emb = torch.from_numpy(np.ascontiguousarray(item_emb, np.float32))
        leaf_rows = self.leaf_items if rows is None else np.asarray(rows)[self.leaf_items]
        self.vectors = TrieVectors(self.first, leaf_rows, emb)
        return self

    def paths(self, sequences: np.ndarray) -> np.ndarray:
        """(N, length) node of each whole ID at every depth (every ID must be in the trie)."""
        seqs = _rows(sequences)
        node = np.zeros(len(seqs), np.int64)
        out = np.zeros(seqs.shape, np.int64)
        for d in range(self.length):
            node = self.step(d, node, seqs[:, d])
            out[:, d] = node
        return out

    def get(self, prefix) -> list[int]:
        """Allowed next tokens after ``prefix`` (empty when the prefix is not in the trie)."""
        (node,), (found,) = self._walk(_rows([prefix]))
        if not found or len(prefix) >= self.length:
            return []
        ptr = self.child_ptr[len(prefix)]
        return self.tokens[len(prefix)][ptr[node] : ptr[node + 1]].tolist()

    def item(self, sequence) -> int | None:
        """The item index of a whole ID, or None when it is not in the trie."""
        (i,) = self.items(_rows([sequence]))
        return None if i < 0 else int(i)

    def items(self, sequences: np.ndarray) -> np.ndarray:
        """Item index of each whole ID (N, length); -1 where an ID is not in the trie."""
        seqs = _rows(sequences)
        if not len(self) or seqs.shape[1] != self.length:
            return np.full(len(seqs), -1, np.int64)
        node, found = self._walk(seqs)
        return np.where(found, self.leaf_items[node], -1)

    def _walk(self, prefixes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each prefix's node (rows of one length), and whether the trie holds that prefix."""
        node = np.zeros(len(prefixes), np.int64)
        found = np.full(len(prefixes), len(self) > 0 and prefixes.shape[1] <= self.length)
        for d in range(min(self.length, prefixes.shape[1])):
            token = prefixes[:, d]
            found &= (token >= 0) & (token < self.span)
            key = node * self.span + token
            j = np.minimum(np.searchsorted(self.keys[d], key), len(self.keys[d]) - 1)
            found &= self.keys[d][j] == key
            node = np.where(found, j, 0)
        return node, found

    def children(self, depth: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tokens): every child token of each of ``nodes`` (level ``depth - 1``; the
        root for depth 0), with the index of the node it belongs to."""
        rows, tokens, _ = self.child_nodes(depth, nodes)
        return rows, tokens

    def child_nodes(self, depth: int, nodes: np.ndarray):
        """(rows, tokens, children): ``children`` and each child's node at level ``depth``
        (a node's children are one contiguous run of the next level)."""
        lo, hi = self.child_ptr[depth][nodes], self.child_ptr[depth][nodes + 1]
        counts = hi - lo
        rows = np.repeat(np.arange(len(nodes)), counts)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        child = np.repeat(lo, counts) + offsets
        return rows, self.tokens[depth][child], child

    def step(self, depth: int, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The child of each node reached by its token (each token one of its children)."""
        return np.searchsorted(self.keys[depth], nodes * self.span + tokens)


def _rows(sequences) -> np.ndarray:
    a = np.asarray(sequences, np.int64)
    return a if a.ndim == 2 else a.reshape(len(a), -1 if a.size else 0)


@dataclass(frozen=True)
class BeamConfig:
    beam_size: int = 10  # beams per query (ComGTIR: 1 -> 37.4, 10 -> 53.3 R@1)
    batch_size: int = 32  # queries decoded together


@torch.no_grad()
def constrained_beam_search(
    decoder,
    memory: torch.Tensor,
    mem_pad: torch.Tensor | None,
    trie: Trie,
    beam_size: int,
    query: torch.Tensor | None = None,
    offsets=None,
) -> list[list[tuple[int, float]]]:
    """For each query: up to ``beam_size`` (item index, log-prob) pairs, best first.

    memory: (S, B, T, d) decoder memory; every emitted sequence is a path of ``trie``.
    ``query`` (B, D): the queries' vectors in the items' space. With them, a tied decoder over
    a tied trie adds the tied node scores (ace_core.retrieval.tied) and normalises each step
    over the allowed tokens, and a whole ID's score adds its item's own inner product with
    the query (so it is a log-probability plus a dense score, comparable across tries of the
    same space, e.g. the per-space tries of the zero-shot path); ``offsets``: the trained
    per-item vectors the captions path adds to it. Otherwise each step is the decoder's
    log-softmax over the whole vocabulary.
    """
    B, device = memory.shape[1], memory.device
    if not len(trie):
        return [[] for _ in range(B)]
    tied = query is not None and getattr(decoder, "tied", False) and trie.vectors is not None
    # live beams, grouped by query: owner query, trie node, last token, log-prob, decoder state
    owners = torch.arange(B, device=device)
    nodes = np.zeros(B, np.int64)
    toks = torch.full((B,), BOS, dtype=torch.long, device=device)
    scores = torch.zeros(B, device=device)
    state = DecodingState(decoder.prepare(memory, mem_pad)).select(owners)  # memory K/V once
    for depth in range(trie.length):
        logits, state = decoder.step(state, toks)
        rows_np, cols_np, children = trie.child_nodes(depth, nodes)
        rows, cols = (torch.from_numpy(a).to(device) for a in (rows_np, cols_np))
        if tied:
            learned = logits[rows, cols]
            step = tied_step_scores(
                decoder, learned, query, owners, trie, depth, rows, children, offsets
            )
        else:
            step = torch.log_softmax(logits.float(), dim=-1)[rows, cols]
        cand = torch.full(logits.shape, float("-inf"), device=device)
        cand[rows, cols] = scores[rows] + step
        beam_rows, toks, scores = _top_per_query(cand, owners, B, beam_size)
        if not len(beam_rows):
            return [[] for _ in range(B)]
        owners, state = owners[beam_rows], state.select(beam_rows)
        nodes = trie.step(depth, nodes[beam_rows.cpu().numpy()], toks.cpu().numpy())
    out: list[list[tuple[int, float]]] = [[] for _ in range(B)]
    for q, item, s in zip(owners.tolist(), trie.leaf_items[nodes].tolist(), scores.tolist()):
        out[q].append((item, s))
    return out


def _top_per_query(cand: torch.Tensor, owners: torch.Tensor, n_queries: int, k: int):
    """The ``k`` best finite (row, token) candidates of each query, over all its rows at once.

    cand (R, V) with rows grouped by query in ``owners`` (R,). Returns the chosen rows, their
    tokens and scores, grouped by query and best first within each.
    """
    R, V = cand.shape
    counts = torch.bincount(owners, minlength=n_queries)
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(R, device=cand.device) - first[owners]
    grid = cand.new_full((n_queries, int(counts.max()), V), float("-inf"))
    grid[owners, slot] = cand
    top = torch.topk(grid.view(n_queries, -1), min(k, grid[0].numel()), dim=1)
    q, j = torch.nonzero(torch.isfinite(top.values), as_tuple=True)
    pos = top.indices[q, j]
    return first[q] + torch.div(pos, V, rounding_mode="floor"), pos % V, top.values[q, j]
