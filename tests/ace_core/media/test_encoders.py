import logging

import numpy as np
import pytest
import torch
from PIL import Image

from ace_core.media.audio_encoder import audio_windows
from ace_core.media.decoding import Decoded
from ace_core.media.encoders import (
    ImageEncoderConfig,
    OpenClipImageEncoder,
    l2_normalize,
    to_common_dim,
)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)) for _ in range(n)]


def _embed(encoder, images):
    return encoder.embed([encoder.prepare(Decoded(im)) for im in images])


def test_image_embeddings_finite_unit_norm_and_repeatable(tiny_encoders):
    enc = tiny_encoders["image"]
    a = _embed(enc, _images(5))
    b = _embed(enc, _images(5))
    assert a.shape == (5, enc.dim) and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a[0], a[1])  # different images, different embeddings


def test_random_init_is_seeded_and_says_so(caplog):
    with caplog.at_level(logging.INFO):
        e1 = OpenClipImageEncoder(
            ImageEncoderConfig("ace-tiny-vit", "random", seed=3), device="cpu"
        )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "random initialisation" in lines[0]  # one line, nothing else
    assert e1.weights_source == "random-init"
    e2 = OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-vit", "random", seed=3), device="cpu")
    e3 = OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-vit", "random", seed=4), device="cpu")
    assert e1.weights_sha256 == e2.weights_sha256 != e3.weights_sha256


def test_open_clip_checkpoint_from_local_path_round_trips(tmp_path, tiny_encoders):
    from safetensors.torch import save_file

    src = OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-vit", "random", seed=7), device="cpu")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    loaded = OpenClipImageEncoder(
        ImageEncoderConfig("ace-tiny-vit", pretrained=str(path)), device="cpu"
    )
    assert loaded.weights_source == str(path)
    assert loaded.weights_sha256 == src.weights_sha256
    ims = _images(3, seed=1)
    np.testing.assert_allclose(_embed(loaded, ims), _embed(src, ims), atol=1e-6)
    # a different seed would give different outputs: the weights really came from the file
    assert not np.allclose(_embed(tiny_encoders["image"], ims), _embed(src, ims))


class _Payload:
    """Unpickling this runs code (writes a marker file): a weights loader must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _unusable_weights(tmp_path):
    import pickle

    pickled = tmp_path / "evil.pt"
    pickled.write_bytes(pickle.dumps({"state_dict": _Payload(tmp_path / "ran")}))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    return {"missing": tmp_path / "nope.pt", "pickle": pickled, "garbage": garbage}


def test_unusable_image_weights_are_an_error_never_a_silent_random_init(tmp_path):
    from ace_core.errors import AceInputError

    for kind, path in _unusable_weights(tmp_path).items():
        with pytest.raises(AceInputError, match="--image-weights .* cannot be loaded"):
            OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-vit", pretrained=str(path)))
        assert not (tmp_path / "ran").exists(), kind  # no code ran


def test_unusable_audio_checkpoints_are_an_error(tmp_path):
    from ace_core.errors import AceInputError
    from ace_core.media.audio_encoder import ClapAudioEncoder
    from ace_core.media.encoders import AudioEncoderConfig

    for kind, path in _unusable_weights(tmp_path).items():
        with pytest.raises(AceInputError, match="--audio-checkpoint .* cannot be loaded"):
            ClapAudioEncoder(AudioEncoderConfig(checkpoint=str(path)), device="cpu")
        assert not (tmp_path / "ran").exists(), kind


def test_video_is_mean_of_frame_embeddings(tiny_encoders):
    video, image = tiny_encoders["video"], tiny_encoders["image"]
    frames = np.stack([np.asarray(im) for im in _images(4, seed=2)])
    v = video.embed([video.prepare(Decoded(frames))])
    per_frame = _embed(image, [Image.fromarray(f) for f in frames])
    np.testing.assert_allclose(v[0], l2_normalize(per_frame.mean(0)), atol=1e-5)


def test_audio_embeddings_and_window_pooling(tiny_encoders):
    enc = tiny_encoders["audio"]
    rng = np.random.default_rng(0)
    short = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    long = (0.1 * rng.standard_normal(48000 * 25)).astype(np.float32)
    out = enc.embed([enc.prepare(Decoded(short)), enc.prepare(Decoded(long))])
    assert out.shape == (2, 512) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    again = enc.embed([enc.prepare(Decoded(short))])
    np.testing.assert_allclose(again[0], out[0], atol=1e-5)


def test_audio_window_policy():
    x = np.arange(10, dtype=np.float32)
    w = audio_windows(x, window=25)
    assert w.shape == (1, 25) and (w[0, 10:20] == x).all()  # repeat-padded
    long = np.arange(100, dtype=np.float32)
    w = audio_windows(long, window=25, max_windows=3)
    assert w.shape == (3, 25) and w[0, 0] == 0 and w[-1, -1] == 99  # spread over the clip
    with pytest.raises(ValueError):
        audio_windows(np.zeros(0, np.float32))


def test_common_dim_padding_keeps_cosines():
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.standard_normal((6, 128)))
    y = to_common_dim(x, 512)
    assert y.shape == (6, 512)
    np.testing.assert_allclose(y @ y.T, x @ x.T, atol=1e-6)
    with pytest.raises(ValueError):
        to_common_dim(y, 128)


def test_no_global_rng_side_effect():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-vit", "random"), device="cpu")
    assert torch.rand(1) == expected
