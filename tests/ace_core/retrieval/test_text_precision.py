"""The text encoder in bfloat16 (text_encoder.py): features close to float32's, kept apart
from them in the feature store, ``auto`` only where the device has bfloat16 natively, and
versions trained before it read back in float32."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ace_core.retrieval.text_encoder as te
from ace_core.index_config import IndexConfig
from ace_core.retrieval.fit import _fit_precision, _new_model
from ace_core.retrieval.model import RetrieverConfig
from ace_core.retrieval.retrieval_model import feature_spec
from ace_core.retrieval.text_features import FeatureSpec, TextFeatures
from ace_index.storage.formats.manifest import config_from_manifest
from ace_index.storage.formats.text_features import TextFeatureStore

TEXTS = [
    f"a {c} {s} in the {p} of a busy street"
    for c in ("red", "small blue", "green")
    for s in ("circle", "five-pointed star")
    for p in ("top left corner", "middle")
]


@pytest.fixture(scope="module")
def encoders():
    path = te.default_encoder_path()
    return te.TextEncoder(path), te.TextEncoder(path, "bfloat16"), te.load_tokenizer(path)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_bfloat16_features_are_float32_features_to_four_nines(encoders):
    fp32, bf16, tok = encoders
    want = TextFeatures.compute(fp32, tok, TEXTS, device="cpu", spec=FeatureSpec())
    got = TextFeatures.compute(
        bf16, tok, TEXTS, device="cpu", spec=FeatureSpec(precision="bfloat16")
    )
    assert _cosine(got.pooled, want.pooled).min() > 0.9999
    rows = torch.arange(len(TEXTS))
    (lw, pw), (lg, pg) = want.layers(rows), got.layers(rows)
    assert torch.equal(pw, pg)
    assert _cosine(lg[:, ~pg], lw[:, ~pw]).min() > 0.999  # every layer, every real token
    assert not torch.equal(got.pooled, want.pooled)  # it did compute in bfloat16
    linear = [m for m in bf16.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)


def test_an_encoder_computes_only_the_precision_it_holds(encoders, tmp_path):
    fp32, bf16, tok = encoders
    with pytest.raises(ValueError, match="computes in bfloat16"):
        TextFeatures.compute(bf16, tok, TEXTS[:2], device="cpu", spec=FeatureSpec())
    with pytest.raises(ValueError, match="computes in float32"):  # even before a miss
        TextFeatureStore(tmp_path, fp32, tok, FeatureSpec(precision="bfloat16"))
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        FeatureSpec(precision="auto")
    by_default = TextFeatures.compute(bf16, tok, TEXTS[:2], device="cpu")  # the encoder's own
    assert not torch.equal(
        by_default.pooled, TextFeatures.compute(fp32, tok, TEXTS[:2], device="cpu").pooled
    )
    with pytest.raises(ValueError, match="load it again"):
        bf16.set_precision("float32")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        fp32.set_precision("auto")


def test_the_feature_store_keeps_each_precision_apart():
    assert FeatureSpec().key == "t48-tokens"  # the folders of stores built before it
    assert FeatureSpec(pooled_memory=True, precision="bfloat16").key == "t48-pooled-bf16"


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_only_where_the_device_has_it_natively(monkeypatch, native):
    monkeypatch.setattr(te, "native_bfloat16", lambda device: native)
    want = "bfloat16" if native else "float32"
    assert te.resolved_precision("auto", "cpu") == want
    assert feature_spec(RetrieverConfig()).precision == want
    assert te.resolved_precision("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        te.resolved_precision("fp16")


@pytest.mark.parametrize("native", [True, False])
def test_a_version_computes_as_it_recorded_unless_bfloat16_would_be_emulated(monkeypatch, native):
    monkeypatch.setattr(te, "native_bfloat16", lambda device: native)
    assert te.runnable_precision("float32", "cpu") == "float32"
    assert te.runnable_precision("bfloat16", "cpu") == ("bfloat16" if native else "float32")
    parent = SimpleNamespace(text_precision="float32")  # an ingest's parent (InitState)
    assert _fit_precision(RetrieverConfig(), parent, "cpu") == "float32"
    parent.text_precision = "bfloat16"
    assert _fit_precision(RetrieverConfig(), parent, "cpu") == ("bfloat16" if native else "float32")
    assert _fit_precision(RetrieverConfig(), None, "cpu") == ("bfloat16" if native else "float32")
    forced = RetrieverConfig(text_precision="bfloat16")  # asked for explicitly: kept
    assert _fit_precision(forced, SimpleNamespace(text_precision="float32"), "cpu") == "bfloat16"


def test_native_bfloat16_follows_the_cpus_instructions(monkeypatch):
    for avx512_bf16, amx, want in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert te.native_bfloat16(torch.device("cpu")) is want
    assert te.native_bfloat16(torch.device("meta")) is False
    for major, want in [(7, False), (8, True), (9, True)]:  # V100 / T4 emulate it
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, m=major: (m, 0))
        assert te.native_bfloat16(torch.device("cuda")) is want


def test_versions_trained_before_it_read_back_in_float32():
    assert config_from_manifest({}).retriever.text_precision == "float32"
    assert IndexConfig().retriever.text_precision == "auto"
    recorded = config_from_manifest({"retriever": {"text_precision": "bfloat16"}})
    assert recorded.retriever.text_precision == "bfloat16"


def test_pooled_features_of_a_text_do_not_depend_on_its_batch_in_bfloat16(encoders):
    _, bf16, tok = encoders
    spec = FeatureSpec(pooled_memory=True, precision="bfloat16")
    one = TextFeatures.compute(bf16, tok, TEXTS, device="cpu", spec=spec, batch=len(TEXTS))
    small = TextFeatures.compute(bf16, tok, TEXTS, device="cpu", spec=spec, batch=5)
    assert np.allclose(one.pooled.numpy(), small.pooled.numpy(), atol=2e-2)
    assert _cosine(one.pooled, small.pooled).min() > 0.9999


def test_a_fit_refuses_an_encoder_of_another_precision(encoders):
    """A caller's encoder must compute in the fit's precision: the other one's features would
    sit in the feature store under the wrong key."""
    fp32, bf16, tok = encoders
    forced = RetrieverConfig(text_precision="bfloat16")
    with pytest.raises(ValueError, match="computes in float32, this fit in bfloat16"):
        _new_model([], np.zeros((0, 8)), None, None, forced, (fp32, tok, None), "cpu", None)
    with pytest.raises(ValueError, match="computes in bfloat16, this fit in float32"):
        _new_model([], np.zeros((0, 8)), None, None, RetrieverConfig(text_precision="float32"),
                   (bf16, tok, None), "cpu", None)  # fmt: skip
