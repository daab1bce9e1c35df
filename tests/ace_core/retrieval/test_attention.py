"""The decoder's prepared-memory attention computes what its nn.MultiheadAttention modules
compute when called directly (the decoder's arithmetic before the memory was prepared)."""

import pytest
import torch

from ace_core.retrieval.attention import DecodingState
from ace_core.retrieval.model import BOS, IDDecoder, RetrieverConfig, Vocab


def _module_layer(layer, y, layers, mem_pad, causal):
    """A FusionLayer's forward through its attention modules, one call per encoder layer."""
    q = layer.norm1(y)
    y = y + layer.drop(layer.self_attn(q, q, q, attn_mask=causal, need_weights=False)[0])
    q = layer.norm2(y)

    def attend(att, mem):
        return att(q, mem, mem, key_padding_mask=mem_pad, need_weights=False)[0]

    if not layer.fusion:
        ctx = attend(layer.coarse_attn, layers[-1])
    else:
        S, B, T, d = layers.shape
        z = layer.coarse_proj(layers.permute(1, 2, 0, 3).reshape(B, T, S * d))
        c = attend(layer.coarse_attn, z)
        w = torch.softmax(layer.alpha, 0)
        fine = sum(w[i] * attend(att, layers[i]) for i, att in enumerate(layer.fine_attn))
        ctx = c * torch.sigmoid(layer.gate(c)) + fine
    y = y + layer.drop(ctx)
    return y + layer.drop(layer.ff(layer.norm3(y)))


def _module_forward(dec, memory, mem_pad, tokens):
    n = tokens.shape[1]
    y = dec.tok(tokens) + dec.pos(torch.arange(n))[None]
    causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    for layer in dec.layers:
        y = _module_layer(layer, y, memory, mem_pad, causal)
    return dec.norm(y) @ dec.tok.weight.T


def _case(fusion: bool, seed: int = 0):
    torch.manual_seed(seed)
    vocab = Vocab(n_coarse=5, levels=2, codebook_size=6, n_suffix=3)
    cfg = RetrieverConfig(d_model=32, n_heads=4, n_layers=2, fusion=fusion)
    dec = IDDecoder(cfg, vocab, enc_hidden=24, n_enc_layers=3, item_dim=8).eval()
    for layer in dec.layers:  # unequal layer weights and non-zero biases
        if fusion:
            torch.nn.init.normal_(layer.alpha)
        for att in [layer.coarse_attn, *getattr(layer, "fine_attn", [])]:
            torch.nn.init.normal_(att.in_proj_bias, std=0.1)
            torch.nn.init.normal_(att.out_proj.bias, std=0.1)
    pad = torch.zeros(4, 7, dtype=torch.bool)
    pad[1, 5:], pad[3, 2:] = True, True  # ragged captions
    memory, pad, _ = dec.memory_from_text(torch.randn(3, 4, 7, 24), pad)
    tokens = torch.randint(2, vocab.size, (4, 4))
    return dec, memory, pad, tokens


@pytest.mark.parametrize("fusion", [True, False])
def test_prepared_memory_matches_the_attention_modules(fusion):
    dec, memory, pad, tokens = _case(fusion)
    got = dec(memory, pad, tokens)
    want = _module_forward(dec, memory, pad, tokens)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    (g_got,) = torch.autograd.grad(got.square().sum(), dec.layers[0].coarse_attn.in_proj_weight)
    (g_want,) = torch.autograd.grad(want.square().sum(), dec.layers[0].coarse_attn.in_proj_weight)
    assert torch.allclose(g_got, g_want, atol=1e-4)
    if fusion:  # the fine branch's per-layer weights get their gradients through the fusion
        got, want = dec(memory, pad, tokens), _module_forward(dec, memory, pad, tokens)
        fine = dec.layers[1].fine_attn[2].in_proj_weight
        (g_got,) = torch.autograd.grad(got.square().sum(), fine)
        (g_want,) = torch.autograd.grad(want.square().sum(), fine)
        assert g_got.abs().sum() > 0 and torch.allclose(g_got, g_want, atol=1e-4)


def test_selecting_prepared_rows_equals_preparing_the_selected_memory():
    dec, memory, pad, tokens = _case(True, seed=1)
    rows = torch.tensor([3, 0, 3, 1])  # beams share their query's memory rows
    picked = dec.decode(dec.prepare(memory, pad).select(rows), tokens)
    direct = dec(memory.index_select(1, rows), pad.index_select(0, rows), tokens)
    assert torch.allclose(picked, direct, atol=1e-6)
    again = torch.tensor([2, 2, 0])  # the next beam step selects among the selected rows
    picked = dec.decode(dec.prepare(memory, pad).select(rows).select(again), tokens[again])
    direct = dec(
        memory.index_select(1, rows[again]), pad.index_select(0, rows[again]), tokens[again]
    )
    assert torch.allclose(picked, direct, atol=1e-6)


@pytest.mark.parametrize("fusion", [True, False])
def test_stepping_one_token_at_a_time_equals_decoding_the_whole_prefix(fusion):
    """Incremental decoding (beam search's path): each step's logits are ``decode``'s last
    position over the tokens so far, also after beam-like selections of the rows."""
    dec, memory, pad, tokens = _case(fusion, seed=2)
    for layer in dec.layers:  # the self-attention's biases enter the cached keys and values
        torch.nn.init.normal_(layer.self_attn.in_proj_bias, std=0.1)
        torch.nn.init.normal_(layer.self_attn.out_proj.bias, std=0.1)
    tokens[:, 0] = BOS
    prepared = dec.prepare(memory, pad)
    state, owners, seqs = DecodingState(prepared).select(torch.arange(4)), torch.arange(4), tokens
    picks = [torch.tensor([0, 1, 2, 3]), torch.tensor([3, 3, 0, 1, 1]), torch.tensor([4, 0, 2])]
    with torch.no_grad():
        for n, rows in enumerate(picks):
            logits, state = dec.step(state, seqs[:, n])
            want = dec.decode(prepared.select(owners), seqs[:, : n + 1])[:, -1]
            assert torch.allclose(logits, want, atol=1e-5), (logits - want).abs().max()
            owners, seqs, state = owners[rows], seqs[rows], state.select(rows)


def test_memory_from_items_has_no_padding():
    dec, _, _, tokens = _case(True)
    memory = dec.memory_from_items(torch.randn(4, 8))
    got, want = dec(memory, None, tokens), _module_forward(dec, memory, None, tokens)
    assert torch.allclose(got, want, atol=1e-5)
