"""Tied output vectors of the ID tree (ace_core.retrieval.tied): node scores against a brute
force, the loss against a per-example reference, and a tied decoder that finds items by their
embeddings before any training."""

import numpy as np
import torch

from ace_core.retrieval._torch import autocast
from ace_core.retrieval.constrained_generation import Trie, constrained_beam_search
from ace_core.retrieval.generation import search_by_embedding
from ace_core.retrieval.model import IDDecoder, RetrieverConfig, Vocab
from ace_core.retrieval.tied import BIG_NODE, group_logsumexp, tied_cross_entropy


def _world(n=300, dim=16, seed=0):
    """Items with IDs (coarse 0..5, two fine levels of 6 and 3 codes, suffix) and unit
    embeddings that the IDs describe, as semantic IDs do: a coarse direction, finer ones and
    noise."""
    rng = np.random.default_rng(seed)
    vocab = Vocab(n_coarse=6, levels=2, codebook_size=6, n_suffix=40)
    raw = np.stack([rng.integers(0, 6, n), rng.integers(0, 6, n), rng.integers(0, 3, n)], 1)
    keys = [tuple(r) for r in raw.tolist()]
    suffix = np.array([keys[:i].count(k) for i, k in enumerate(keys)])
    tokens = vocab.encode(np.concatenate([raw, suffix[:, None]], 1))
    coarse, fine, finer = (rng.standard_normal((6, dim)) for _ in range(3))
    emb = 2 * coarse[raw[:, 0]] + fine[raw[:, 1]] + 0.5 * finer[raw[:, 2]]
    emb = (emb + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)
    return vocab, tokens, emb / np.linalg.norm(emb, axis=1, keepdims=True)


def _members(tokens, depth, node_prefix):
    return np.flatnonzero((tokens[:, : depth + 1] == node_prefix).all(1))


def test_node_scores_are_the_mean_item_score_big_and_small_nodes():
    _, tokens, emb = _world()
    rows = np.arange(0, 300, 2)  # a subset, as a modality filter makes
    trie = Trie(tokens[rows]).tie(emb, rows)
    q = torch.from_numpy(np.random.default_rng(1).standard_normal((3, emb.shape[1]))).float()
    sizes = set()
    for depth in range(trie.length):
        nodes = np.arange(len(trie.tokens[depth]))
        owner = torch.from_numpy(nodes % 3)
        got = trie.vectors.scores(q, owner, depth, nodes).numpy()
        leaves = trie.first[depth]
        for j in nodes:
            prefix = tokens[rows][trie.leaf_items[leaves[j]], : depth + 1]
            members = rows[_members(tokens[rows], depth, prefix)]
            sizes.add(len(members) > BIG_NODE)
            expected = (emb[members] @ q[j % 3].numpy()).mean()
            assert abs(got[j] - expected) < 1e-5
    assert sizes == {True, False}  # both ways of scoring a node were exercised


def test_group_logsumexp_matches_torch_per_group():
    x = torch.randn(50)
    groups = torch.randint(0, 7, (50,))
    got = group_logsumexp(x, groups, 8)
    for g in range(7):
        if (groups == g).any():
            assert torch.allclose(got[g], torch.logsumexp(x[groups == g], 0), atol=1e-5)
    assert got[7] == float("-inf")  # an empty group


def _decoder(vocab, dim, seed=0):
    torch.manual_seed(seed)
    cfg = RetrieverConfig(d_model=32, n_layers=1, n_heads=4, index_memory_tokens=2)
    return IDDecoder(cfg, vocab, enc_hidden=24, n_enc_layers=2, item_dim=dim).eval()


def test_an_untrained_tied_decoder_finds_items_by_their_embedding():
    vocab, tokens, emb = _world()
    dec = _decoder(vocab, emb.shape[1])
    trie = Trie(tokens).tie(emb)
    hits = search_by_embedding(dec, emb, trie, beam=5, k=5)
    assert np.mean([h[0][0] == i for i, h in enumerate(hits)]) > 0.95
    for h in hits:  # scores are log-probabilities over each query's results
        assert abs(np.logaddexp.reduce([s for _, s in h])) < 1e-6
    plain = search_by_embedding(dec, emb, Trie(tokens), beam=5, k=5)  # not tied: chance
    assert np.mean([h[0][0] == i for i, h in enumerate(plain)]) < 0.2


def test_tied_cross_entropy_matches_a_per_example_reference():
    vocab, tokens, emb = _world(n=80)
    dec = _decoder(vocab, emb.shape[1])
    trie = Trie(tokens).tie(emb)
    items = np.array([0, 5, 17, 42])
    logits = torch.randn(len(items), tokens.shape[1], vocab.size)
    q = torch.from_numpy(emb[items])
    got = tied_cross_entropy(dec, logits, q, trie, trie.paths(tokens[items]))
    total = 0.0
    scale = dec.tied_log_scale.exp().detach()
    for b, i in enumerate(items):
        for d in range(tokens.shape[1]):
            allowed = np.unique(
                tokens[(tokens[:, :d] == tokens[i, :d]).all(1), d]
            )  # the tokens any ID with the gold prefix has next
            node_score = [
                emb[_members(tokens, d, np.append(tokens[i, :d], t))].mean(0) @ emb[i]
                for t in allowed
            ]
            logit = logits[b, d, allowed] + scale[d] * torch.tensor(node_score)
            gold = list(allowed).index(tokens[i, d])
            total += float(torch.logsumexp(logit, 0) - logit[gold])
    assert abs(float(got.detach()) - total / (len(items) * tokens.shape[1])) < 1e-4



def test_the_tied_loss_trains_under_bfloat16_autocast():
    """A GPU trains under bfloat16 autocast: an indexing step's query vectors are float32
    while the node scores' matmuls are bfloat16; the loss is float32's within bfloat16's
    precision and its gradient flows (big nodes and small ones both scored)."""
    vocab, tokens, emb = _world()
    dec = _decoder(vocab, emb.shape[1])
    trie = Trie(tokens).tie(emb)
    items = np.arange(0, 300, 7)
    q = torch.from_numpy(emb[items])
    logits = torch.randn(len(items), tokens.shape[1], vocab.size, requires_grad=True)
    want = tied_cross_entropy(dec, logits, q, trie, trie.paths(tokens[items]))
    with autocast(torch.device("cpu"), "bfloat16"):
        got = tied_cross_entropy(dec, logits, q, trie, trie.paths(tokens[items]))
    got.backward()
    assert abs(got.item() - want.item()) < 0.02 * want.item()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()

def test_the_beam_normalises_over_allowed_tokens_only_when_tied():
    vocab, tokens, emb = _world(n=60)
    dec = _decoder(vocab, emb.shape[1])
    memory = dec.memory_from_items(torch.from_numpy(emb[:4]))
    q = torch.from_numpy(emb[:4])
    tied = constrained_beam_search(dec, memory, None, Trie(tokens).tie(emb), 60, query=q)
    assert [h[0][0] for h in tied] == [0, 1, 2, 3]
    untied = constrained_beam_search(dec, memory, None, Trie(tokens), 60)
    for h in untied:  # the whole vocabulary's log-softmax: the results hold less than 1
        assert np.logaddexp.reduce([s for _, s in h]) < -1e-3


def test_uncaptioned_items_get_a_bias_fit_on_blinded_validation():
    """Captioned items' offsets lift every caption-like query towards them; without a bias an
    item without captions is never first. The fit chooses one that gives both kinds their
    queries back, and none when every item is captioned."""
    import torch

    from ace_core.retrieval.item_offsets import ItemOffsets, fit_uncaptioned_bias

    rng = np.random.default_rng(0)
    emb = torch.from_numpy(rng.standard_normal((40, 8)).astype(np.float32))
    emb = emb / emb.norm(dim=1, keepdim=True)
    captioned = np.arange(40) < 30
    offsets = torch.zeros(40, 8)
    offsets[:30] = 0.5 * emb[:30] + 0.3  # each captioned item lifted, and all of them alike
    gold = np.arange(40)
    q = emb + 0.05 * torch.from_numpy(rng.standard_normal((40, 8)).astype(np.float32))
    bias = fit_uncaptioned_bias(offsets, q, gold, emb, captioned)
    assert bias > 0
    assert fit_uncaptioned_bias(offsets, q, gold, emb, np.ones(40, bool)) == 0.0
    table = ItemOffsets(40, 8)
    with torch.no_grad():
        table.vectors.weight.copy_(offsets + 1.0)
    table.set_uncaptioned(captioned, bias)
    assert not table.vectors.weight[30:].any() and table.vectors.weight[:30].all()
    assert torch.equal(table.bias[30:], torch.full((10,), bias)) and not table.bias[:30].any()
    assert torch.equal(table.captioned, torch.from_numpy(captioned.astype(np.float32)))
