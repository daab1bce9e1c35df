import numpy as np
import pytest
import torch

from ace_core.retrieval.constrained_generation import Trie, constrained_beam_search
from ace_core.retrieval.model import BOS, IDDecoder, RetrieverConfig, Vocab


def test_trie_allowed_tokens_and_items():
    trie = Trie(np.array([[3, 5, 7], [3, 5, 8], [4, 6, 7]]))
    assert sorted(trie.get([])) == [3, 4]
    assert sorted(trie.get([3, 5])) == [7, 8]
    assert trie.get([9]) == []
    assert trie.item([4, 6, 7]) == 2 and trie.item([4, 6]) is None
    with pytest.raises(ValueError, match="duplicate"):
        Trie(np.array([[1, 2], [1, 2]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trie_agrees_with_a_set_of_prefixes(seed):
    rng = np.random.default_rng(seed)
    seqs = np.unique(rng.integers(0, [3, 5, 4, 6], (150, 4)), axis=0)
    seqs = seqs[rng.permutation(len(seqs))]  # items in no particular order
    trie = Trie(seqs)
    children: dict[tuple, set] = {}
    for row in seqs.tolist():
        for d in range(4):
            children.setdefault(tuple(row[:d]), set()).add(row[d])
    probes = [row[:d] for row in rng.integers(0, 7, (200, 4)).tolist() for d in range(5)]
    for prefix in probes + [row[:d] for row in seqs.tolist() for d in range(5)]:
        assert sorted(trie.get(prefix)) == sorted(children.get(tuple(prefix), ()))
    whole = {tuple(r): i for i, r in enumerate(seqs.tolist())}
    probes = rng.integers(0, 7, (300, 4))
    expect = [whole.get(tuple(r), -1) for r in probes.tolist()]
    assert trie.items(probes).tolist() == expect
    assert [trie.item(r) for r in probes.tolist()] == [None if e < 0 else e for e in expect]
    assert trie.items(seqs).tolist() == list(range(len(seqs)))
    # a walk by children/step reaches exactly the stored IDs
    nodes = np.zeros(1, np.int64)
    paths = np.zeros((1, 0), np.int64)
    for d in range(4):
        rows, toks = trie.children(d, nodes)
        nodes = trie.step(d, nodes[rows], toks)
        paths = np.concatenate([paths[rows], toks[:, None]], 1)
    assert sorted(map(tuple, paths.tolist())) == sorted(whole)
    assert [whole[tuple(p)] for p in paths.tolist()] == trie.leaf_items[nodes].tolist()


def test_empty_trie_and_search():
    trie = Trie(np.empty((0, 3), np.int64))
    assert len(trie) == 0 and trie.get([]) == [] and trie.item([1, 2, 3]) is None
    assert trie.items(np.array([[1, 2, 3]])).tolist() == [-1]
    dec = _decoder(Vocab(n_coarse=4, levels=2, codebook_size=6, n_suffix=3))
    mem, pad = _memory(dec, 3)
    assert constrained_beam_search(dec, mem, pad, trie, beam_size=5) == [[], [], []]


def _decoder(vocab, seed=0, fusion=True):
    torch.manual_seed(seed)
    cfg = RetrieverConfig(
        d_model=32, n_heads=2, n_layers=2, dropout=0.0, fusion=fusion, bridge=False
    )
    dec = IDDecoder(cfg, vocab, enc_hidden=16, n_enc_layers=3, item_dim=8)
    with torch.no_grad():
        dec.tok.weight.normal_(0, 1.0)  # peaked distributions make the test meaningful
    return dec.eval()


def _ids(vocab, n, seed=0):
    rng = np.random.default_rng(seed)
    rows = set()
    while len(rows) < n:
        rows.add(
            (
                int(rng.integers(vocab.n_coarse)),
                *[int(rng.integers(vocab.codebook_size)) for _ in range(vocab.levels)],
                int(rng.integers(vocab.n_suffix)),
            )
        )
    return vocab.encode(np.array(sorted(rows)))


def _memory(dec, b, seed=1):
    g = torch.Generator().manual_seed(seed)
    layers = torch.randn(3, b, 5, 16, generator=g)
    mem, pad, _ = dec.memory_from_text(layers, torch.zeros(b, 5, dtype=torch.bool))
    return mem, pad


@pytest.mark.parametrize("fusion", [True, False])
def test_beam_search_never_leaves_the_trie(fusion):
    vocab = Vocab(n_coarse=4, levels=2, codebook_size=6, n_suffix=3)
    seqs = _ids(vocab, 40)
    trie = Trie(seqs)
    dec = _decoder(vocab, fusion=fusion)
    mem, pad = _memory(dec, 6)
    results = constrained_beam_search(dec, mem, pad, trie, beam_size=7)
    assert len(results) == 6
    for res in results:
        items = [i for i, _ in res]
        assert len(items) == 7 == len(set(items))
        assert all(0 <= i < len(seqs) for i in items)
        scores = [s for _, s in res]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)


def test_exhaustive_beam_matches_brute_force_scoring_under_the_trie():
    vocab = Vocab(n_coarse=3, levels=1, codebook_size=4, n_suffix=2)
    seqs = _ids(vocab, 12, seed=3)
    trie = Trie(seqs)
    dec = _decoder(vocab, seed=5)
    mem, pad = _memory(dec, 1, seed=7)
    (res,) = constrained_beam_search(dec, mem, pad, trie, beam_size=len(seqs))

    # brute force: score every ID in the trie by the sum of its token log-probs
    @torch.no_grad()
    def constrained_score(seq):
        total = 0.0
        for t in range(len(seq)):
            allowed = trie.get(seq[:t])
            tokens = torch.tensor([[BOS, *seq[:t]]])
            logp = torch.log_softmax(dec(mem, pad, tokens)[0, -1].float(), -1)
            total += float(logp[seq[t]])
            assert seq[t] in allowed
        return total

    brute = sorted(
        ((i, constrained_score(list(s))) for i, s in enumerate(seqs.tolist())), key=lambda p: -p[1]
    )
    assert [i for i, _ in res] == [i for i, _ in brute]
    np.testing.assert_allclose([s for _, s in res], [s for _, s in brute], atol=1e-4)


def test_vocab_layout_and_suffix_overflow():
    v = Vocab(n_coarse=5, levels=2, codebook_size=8, n_suffix=3)
    enc = v.encode(np.array([[4, 7, 0, 2]]))
    assert enc.tolist() == [[2 + 4, 2 + 5 + 7, 2 + 5 + 8 + 0, 2 + 5 + 16 + 2]]
    assert v.size == 2 + 5 + 16 + 3
    with pytest.raises(ValueError, match="suffix"):
        v.encode(np.array([[0, 0, 0, 3]]))


def test_fusion_weights_are_learnable_and_used():
    vocab = Vocab(n_coarse=2, levels=1, codebook_size=2, n_suffix=1)
    dec = _decoder(vocab)
    mem, pad = _memory(dec, 2)
    tokens = torch.tensor([[BOS, 2], [BOS, 3]])
    out = dec(mem, pad, tokens)
    out.sum().backward()
    layer = dec.layers[0]
    assert layer.alpha.grad is not None and layer.alpha.grad.abs().sum() > 0
    assert layer.coarse_proj.weight.grad.abs().sum() > 0 and layer.gate.weight.grad.abs().sum() > 0
    assert out.shape == (2, 2, vocab.size)
