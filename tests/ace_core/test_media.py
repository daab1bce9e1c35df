import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ace_core.media.discovery import discover, sniff_modality


def _png(path, color=(255, 0, 0)):
    Image.new("RGB", (8, 8), color).save(path, format="PNG")


def test_modality_is_decided_by_content_not_extension(tmp_path):
    _png(tmp_path / "really_a_png.wav")
    (tmp_path / "notes.jpg").write_text("just text")
    assert sniff_modality(tmp_path / "really_a_png.wav") == "image"
    assert sniff_modality(tmp_path / "notes.jpg") is None


def test_shared_media_modalities(shared_media):
    assert sniff_modality(shared_media / "odd/pydub/wrong_extension.aac") == "audio"
    assert sniff_modality(shared_media / "odd/pydub/test5.webm") == "audio"  # Opus in WebM
    assert sniff_modality(shared_media / "imageio/cockatoo.mp4") == "video"
    assert sniff_modality(shared_media / "odd/pydub/test1.raw") is None  # headerless PCM
    assert sniff_modality(shared_media / "imageio/stent.npz") is None


def test_identical_bytes_are_one_item_and_captions_merge(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    shutil.copy(tmp_path / "a.png", tmp_path / "sub" / "b.png")
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"path": "a.png", "captions": ["a red square"]})
        + "\n"
        + json.dumps({"path": "sub/b.png", "captions": ["red block", "a red square"]})
        + "\n"
    )
    found = discover(tmp_path)
    assert len(found.files) == 1
    item = found.files[0]
    assert found.duplicates == {item.item_id: ["sub/b.png"]}
    assert found.captions[item.item_id].captions == ["a red square", "red block"]


def test_bad_caption_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", (0, 255, 0))
    lines = [
        json.dumps({"path": "a.png", "captions": ["ok caption"], "split": "test"}),
        "{not json",
        json.dumps({"path": "missing.png", "captions": ["x"]}),
        json.dumps({"path": "b.png", "captions": "not a list"}),
        json.dumps({"path": "b.png", "captions": ["y"], "split": "dev"}),
        "",
    ]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    found = discover(tmp_path)
    assert [e.split(":")[1] for e in found.caption_errors] == ["2", "3", "4", "5"]
    assert "unknown path 'missing.png'" in found.caption_errors[1]
    assert len(found.captions) == 1
    (entry,) = found.captions.values()
    assert entry.captions == ["ok caption"] and entry.split == "test"


def test_non_media_files_are_skipped_and_counted(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "readme.txt").write_text("hello")
    np.save(tmp_path / "arr.npy", np.zeros(3))
    (tmp_path / "empty.bin").write_bytes(b"")
    found = discover(tmp_path)
    assert [f.path for f in found.files] == ["a.png"]
    assert sorted(p for p, _ in found.skipped) == ["arr.npy", "empty.bin", "readme.txt"]


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus directory not found"):
        discover(tmp_path / "nope")
