"""The store's text features (storage/formats/text_features.py): computed once, reused by
content hash, equal to features computed in memory, and never trusted when damaged."""

import numpy as np
import pytest
import torch

from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.text_encoder import build_text_encoder
from ace_core.retrieval.text_features import FeatureSpec, TextFeatures
from ace_index.storage.formats.text_features import TextFeatureStore

TEXTS = [
    f"a {c} {s} at the {p}"
    for c in ("red", "blue", "green")
    for s in ("circle", "square")
    for p in ("top left", "bottom right")
]


@pytest.fixture(scope="module")
def encoder():
    enc, tok, _ = build_text_encoder(RetrieverConfig(text_precision="float32"))
    return enc.eval(), tok


class Counting:
    """The encoder, counting the texts it encodes."""

    def __init__(self, enc):
        self.enc, self.texts = enc, 0
        self.hidden, self.n_layers = enc.hidden, enc.n_layers

    def __call__(self, ids, mask):
        self.texts += ids.shape[0]
        return self.enc(ids, mask)


def _same(a: TextFeatures, b: TextFeatures, rows) -> None:
    la, pa = a.layers(torch.tensor(rows))
    lb, pb = b.layers(torch.tensor(rows))
    assert torch.equal(pa, pb) and torch.allclose(la, lb)
    assert torch.allclose(a.pooled[rows], b.pooled[rows], atol=1e-3)


@pytest.mark.parametrize("pooled", [False, True])
def test_stored_features_equal_features_computed_in_memory(tmp_path, encoder, pooled):
    enc, tok = encoder
    spec = FeatureSpec(pooled_memory=pooled)
    stored = TextFeatureStore(tmp_path, enc, tok, spec).features(TEXTS)
    memory = TextFeatures.compute(enc, tok, TEXTS, device="cpu", spec=spec)
    _same(stored, memory, [0, 3, 11, 5])
    layers, pad = stored.layers(torch.tensor([0, 1]))
    assert layers.shape[:2] == (enc.n_layers, 2)
    if pooled:  # one memory token per layer
        assert layers.shape[2] == 1 and not pad.any()
    assert isinstance(stored.parts[0], np.memmap)  # read from the file, not held in memory


def test_texts_are_encoded_once_and_reused_by_content_hash(tmp_path, encoder):
    enc, tok = encoder
    counting = Counting(enc)
    store = TextFeatureStore(tmp_path, counting, tok, FeatureSpec())
    first = store.features(TEXTS[:8])
    assert counting.texts == 8
    again = store.features(TEXTS[4:] + TEXTS[4:6])  # 4 stored, 4 new, 2 repeated
    assert counting.texts == 12
    la, _ = first.layers(torch.tensor([5]))
    lb, _ = again.layers(torch.tensor([1]))
    assert torch.equal(la, lb)
    assert len(list(tmp_path.glob("part-*.json"))) == 2


def test_a_damaged_feature_file_is_encoded_again_not_trusted(tmp_path, encoder, caplog):
    import ace_index.storage.formats.text_features as tf

    enc, tok = encoder
    counting = Counting(enc)
    good = TextFeatureStore(tmp_path, counting, tok, FeatureSpec()).features(TEXTS)
    reference = good.layers(torch.arange(len(TEXTS)))[0].clone()
    (blocks,) = tmp_path.glob("part-*.f16")
    data = bytearray(blocks.read_bytes())
    data[100:120] = bytes(20)  # zeroed bytes: still a readable file of the right size
    blocks.write_bytes(bytes(data))
    tf._VERIFIED.clear()  # a new process
    again = TextFeatureStore(tmp_path, counting, tok, FeatureSpec()).features(TEXTS)
    assert counting.texts == 2 * len(TEXTS)  # encoded again
    assert "damaged" in caplog.text
    assert torch.allclose(again.layers(torch.arange(len(TEXTS)))[0], reference)
    assert not blocks.exists()  # the damaged part is gone


def test_an_unfinished_part_is_ignored(tmp_path, encoder):
    enc, tok = encoder
    counting = Counting(enc)
    store = TextFeatureStore(tmp_path, counting, tok, FeatureSpec())
    store.features(TEXTS[:4])
    for meta in tmp_path.glob("part-*.json"):  # killed before its last file was written
        meta.unlink()
    store.features(TEXTS[:4])
    assert counting.texts == 8
