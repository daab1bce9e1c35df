"""ace_core.retrieval.bert against transformers (the reference): the same token IDs and masks
as AutoTokenizer and the same hidden states as BertModel, on the real all-MiniLM-L6-v2 and on
a random BERT of another shape; a checkpoint it does not reproduce goes through transformers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ace_core.retrieval.bert import Bert, FastTokenizer, is_plain_bert
from ace_core.retrieval.text_encoder import TextEncoder, default_encoder_path, load_tokenizer

TEXTS = ["a dog barking in the rain", "Café naïve — 東京 🎵 ümlaut", "word " * 80, "",
         "A RED circle, on white!!", "don't (stop) 3.14 e-mail@x.org"]  # fmt: skip


def _reference(path, ids, mask) -> torch.Tensor:
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states[1:])


def _same_tokens(path) -> dict:
    from transformers import AutoTokenizer

    want = AutoTokenizer.from_pretrained(path)(
        TEXTS, padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    got = FastTokenizer(path)(TEXTS, padding=True, truncation=True, max_length=48)
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"])
    return got


def test_minilm_matches_transformers():
    path = default_encoder_path()
    assert is_plain_bert(path)
    enc = _same_tokens(path)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        got = Bert.from_folder(path)(ids, mask)
    want = _reference(path, ids, mask)
    assert got.shape == want.shape == (6, len(TEXTS), ids.shape[1], 384)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_another_bert_shape_matches_transformers(tmp_path, act):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=3,
                     num_attention_heads=4, intermediate_size=96, hidden_act=act)  # fmt: skip
    BertModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(f"{default_encoder_path()}/{name}", tmp_path / name)
    enc = _same_tokens(tmp_path)
    encoder = TextEncoder(str(tmp_path))
    assert isinstance(encoder.model, Bert) and (encoder.hidden, encoder.n_layers) == (48, 3)
    with torch.no_grad():
        got = encoder(enc["input_ids"], enc["attention_mask"])
    want = _reference(tmp_path, enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_a_bert_it_does_not_reproduce_loads_through_transformers(tmp_path):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, position_embedding_type="relative_key")  # fmt: skip
    BertModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    shutil.copy(f"{default_encoder_path()}/tokenizer.json", tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"
    assert not is_plain_bert(tmp_path)
    encoder = TextEncoder(str(tmp_path))
    assert not isinstance(encoder.model, Bert) and encoder.n_layers == 2
    assert not isinstance(load_tokenizer(str(tmp_path)), FastTokenizer)


def test_a_missing_tensor_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    path = default_encoder_path()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(f"{path}/{name}", tmp_path / name)
    state = load_file(f"{path}/model.safetensors")
    state.pop("encoder.layer.3.output.dense.weight")
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RuntimeError, match="encoder.layer.3.output.dense.weight"):
        Bert.from_folder(tmp_path)
