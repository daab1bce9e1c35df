"""The project's tiny aligned encoders: built seeded and reused, loaded through the options
users give for real weights, and aligned (zero-shot text -> media recall among 1,000 items of
an unseen scenes-world seed above the issue's floors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ace_core.errors import AceInputError
from ace_core.media.audio_encoder import ClapAudioEncoder
from ace_core.media.decoding import Decoded
from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig, OpenClipImageEncoder
from ace_core.tiny_encoders import (
    MANIFEST,
    TinyEncoderConfig,
    build_tiny_encoders,
    recall_at,
)
from ace_core.world.corpus import draw_item

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "tiny"
HELD_OUT = 1000  # items of an unseen generator seed each caption is ranked among
QUICK = TinyEncoderConfig(
    image_items=24, audio_items=12, image_steps=2, audio_steps=2, batch_size=8, eval_items=6
)


def test_build_is_seeded_reused_and_rebuilt_when_damaged(tmp_path):
    first = build_tiny_encoders(tmp_path / "a", QUICK, progress=lambda s: None)
    assert not first["reused"] and set(first["zero_shot"]) == {"image", "audio"}
    assert "--image-weights" in first["args"] and "--audio-checkpoint" in first["args"]
    again = build_tiny_encoders(tmp_path / "a", QUICK, progress=lambda s: None)
    assert again["reused"] and again["files"] == first["files"]
    other = build_tiny_encoders(tmp_path / "b", QUICK, progress=lambda s: None)
    assert other["files"] == first["files"]  # same seed, same bytes
    weights = tmp_path / "a" / "ace-tiny-clap.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    assert not build_tiny_encoders(tmp_path / "a", QUICK, progress=lambda s: None)["reused"]


def test_recall_at_ranks_each_answer_among_all_items():
    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.4, 0.6], [0.3, 0.3, 0.3]])  # ranks 1, 3, 1
    assert recall_at(scores, ks=(1, 2, 3)) == {"R@1": 0.6667, "R@2": 0.6667, "R@3": 1.0}


@pytest.fixture(scope="module")
def shipped() -> Path:
    if not (SHIPPED / MANIFEST).exists():
        pytest.skip(f"no tiny encoders at {SHIPPED} (ace tiny-encoders {SHIPPED} builds them)")
    return SHIPPED


def test_tiny_clip_loads_through_image_weights_and_is_aligned(shipped):
    enc = OpenClipImageEncoder(
        ImageEncoderConfig("ace-tiny-clip", str(shipped / "ace-tiny-clip.safetensors")),
        device="cpu",
    )
    drawn = [draw_item(4242, "image", i) for i in range(HELD_OUT)]  # a seed training never saw
    items = enc.embed([enc.prepare(Decoded(Image.fromarray(px))) for _, _, px in drawn])
    texts = enc.embed_text([caps[i % len(caps)] for i, (_, caps, _) in enumerate(drawn)])
    assert recall_at(texts @ items.T)["R@10"] >= 0.5  # among 1,000 (the floor)


def test_tiny_clap_loads_through_audio_checkpoint_and_is_aligned(shipped):
    enc = ClapAudioEncoder(
        AudioEncoderConfig("ace-tiny-clap", str(shipped / "ace-tiny-clap.safetensors")),
        device="cpu",
    )
    drawn = [draw_item(4242, "audio", i) for i in range(HELD_OUT)]
    items = np.concatenate([enc.embed([enc.prepare(Decoded(x)) for _, _, x in drawn[s : s + 100]])
                            for s in range(0, HELD_OUT, 100)])  # fmt: skip
    texts = enc.embed_text([caps[i % len(caps)] for i, (_, caps, _) in enumerate(drawn)])
    assert items.shape == (HELD_OUT, enc.dim) and enc.text_sha256 != enc.weights_sha256
    assert recall_at(texts @ items.T)["R@10"] >= 0.4  # among 1,000 (the floor)


def test_default_weights_that_are_not_here_stop_with_one_line_naming_the_options():
    with pytest.raises(AceInputError) as e:
        OpenClipImageEncoder(ImageEncoderConfig("ace-tiny-clip"), device="cpu")
    assert "--image-weights random" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(AceInputError) as e:
        ClapAudioEncoder(AudioEncoderConfig("ace-tiny-clap"), device="cpu")
    assert "--audio-checkpoint random" in str(e.value)


def test_merged_paths_add_the_probabilities_of_an_item_both_paths_found():
    from ace_core.retrieval.zero_shot import merge_paths

    captions = [[(3, np.log(0.5)), (1, np.log(0.3))]]
    zero_shot = [[(1, np.log(0.4)), (7, np.log(0.2))]]
    merged = merge_paths(captions, zero_shot, k=2)[0]
    assert [i for i, _ in merged] == [1, 3]  # 0.3 + 0.4 beats 0.5
    assert np.isclose(merged[0][1], np.log(0.7)) and np.isclose(merged[1][1], np.log(0.5))


def test_auto_path_follows_captions_and_the_encoders_weights():
    from ace_index.query.loaded import LoadedVersion

    trained = {"image": {"weights_source": "/w/clip.safetensors", "text_sha256": "a" * 64}}
    random = {"image": {"weights_source": "random-init", "text_sha256": "a" * 64}}
    caps = {"i": ["a caption"]}

    def path(captions, encoders):
        return LoadedVersion("v1", None, {}, {}, {}, captions, encoders=encoders).generative_path

    assert path({}, trained) == "zero-shot"
    assert path(caps, trained) == "both"
    assert path(caps, random) == "captions"


def test_towers_that_hash_differently_from_the_version_are_refused(shipped):
    from ace_core.media.embed_config import EmbedConfig
    from ace_index.query.towers import load_text_towers

    weights = str(shipped / "ace-tiny-clip.safetensors")
    embed = EmbedConfig(image=ImageEncoderConfig("ace-tiny-clip", weights))
    record = {"weights_source": weights, "text_sha256": "0" * 64}
    with pytest.raises(AceInputError, match="text_sha256 differs"):
        load_text_towers("v000001", embed, {"image": record})
    with pytest.raises(AceInputError, match="predates recorded text towers"):
        load_text_towers("v000001", embed, {"image": {"weights_source": weights}})
