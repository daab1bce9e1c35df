"""The embedding cache's key names a local weights file by its bytes, not its path."""

from __future__ import annotations

import shutil

from ace_core.config_io import config_hash
from ace_core.media.embed_config import EmbedConfig, embed_cache_key
from ace_core.media.encoders import AudioEncoderConfig, ImageEncoderConfig


def _config(image_weights: str, audio_checkpoint: str = "random") -> EmbedConfig:
    return EmbedConfig(
        image=ImageEncoderConfig("ace-tiny-clip", image_weights),
        audio=AudioEncoderConfig("ace-tiny-clap", audio_checkpoint),
    )


def test_a_moved_or_copied_weights_file_keeps_its_key(tmp_path):
    first = tmp_path / "a" / "clip.safetensors"
    first.parent.mkdir()
    first.write_bytes(b"weights one")
    key = embed_cache_key(_config(str(first)))
    moved = tmp_path / "b" / "renamed.safetensors"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    assert embed_cache_key(_config(str(moved))) == key
    first.unlink()
    assert embed_cache_key(_config(str(moved))) == key


def test_other_bytes_at_the_same_path_give_another_key(tmp_path):
    weights = tmp_path / "clip.safetensors"
    weights.write_bytes(b"weights one")
    key = embed_cache_key(_config(str(weights), str(weights)))
    weights.write_bytes(b"weights two, longer")
    assert embed_cache_key(_config(str(weights), str(weights))) != key


def test_the_audio_checkpoint_file_is_named_by_its_bytes_too(tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    one.write_bytes(b"clap one")
    two.write_bytes(b"clap two")
    assert embed_cache_key(_config("random", str(one))) != embed_cache_key(
        _config("random", str(two))
    )


def test_tags_default_and_random_hash_as_before():
    """A store whose encoders are named by tag keeps the cache it wrote before the key named
    files by their bytes."""
    for config in (EmbedConfig(), _config("random"), _config("laion2b_s34b_b79k", "default")):
        assert embed_cache_key(config) == config_hash(config)
