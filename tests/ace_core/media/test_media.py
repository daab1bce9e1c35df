import io
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


def _write_formats(folder):
    """Media that has no magic number we check ourselves, and files too small to embed."""
    import av
    import soundfile as sf

    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8))
    rgb.save(folder / "photo.pcx")
    rgb.save(folder / "pages.tif", save_all=True, append_images=[rgb.rotate(90), rgb.convert("L")])
    (folder / "icon.xpm").write_text(
        '/* XPM */\nstatic char *x[] = {\n"4 4 2 1",\n"  c #FF0000",\n". c #0000FF",\n'
        '" .. ",\n".  .",\n".  .",\n" .. "};\n'
    )
    c = av.open(str(folder / "clip.mpg"), "w", format="mpeg")  # MPEG-1 program stream
    s = c.add_stream("mpeg1video", rate=25)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    for i in range(25):
        frame = (np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8)
        for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            c.mux(packet)
    for packet in s.encode():
        c.mux(packet)
    c.close()
    sf.write(folder / "click.wav", np.zeros(20, np.float32), 48000)  # about 100 bytes
    Image.new("RGB", (2, 2)).save(folder / "dot.png")
    (folder / "notes.txt").write_text("hello\n" * 20)
    (folder / "meta.json").write_text('{"a": 1}')


def test_every_format_pillow_or_pyav_decodes_is_media_and_tiny_files_fail(tmp_path, tiny_encoders):
    from ace_core.media.embed_config import PipelineConfig
    from ace_core.media.pipeline import embed_files

    _write_formats(tmp_path)
    found = discover(tmp_path)
    modality = {f.path: f.modality for f in found.files}
    assert modality == {
        "photo.pcx": "image", "pages.tif": "image", "icon.xpm": "image", "clip.mpg": "video",
        "click.wav": "audio", "dot.png": "image",
    }  # fmt: skip
    assert {p for p, _ in found.skipped} == {"notes.txt", "meta.json"}
    results = {r.file.path: r for r in embed_files(found.files, tiny_encoders, PipelineConfig())}
    for ok in ("photo.pcx", "pages.tif", "icon.xpm", "clip.mpg"):
        assert results[ok].error is None, (ok, results[ok].error)
    assert results["pages.tif"].meta["n_frames"] == 3  # the first page, the count recorded
    assert "audio too short to embed" in results["click.wav"].error
    assert "image too small to embed: 2x2 px" in results["dot.png"].error


def test_heic_and_avif_photos_decode_and_draw_thumbnails(shared_media):
    """HEIC/HEIF through pillow-heif, AVIF through Pillow itself: found as images, decoded to
    the pixels of the same photo in another format, thumbnails drawn."""
    from ace_core.media.decoding import decode_image
    from ace_core.media.modalities import thumbnail_jpeg

    folder = shared_media / "odd" / "pillow"
    reference = np.asarray(decode_image(str(folder / "hopper.png")).data, np.float32)
    for name in ("avif/hopper.avif", "avif/hopper.heif"):
        assert sniff_modality(folder / name) == "image"
        pixels = np.asarray(decode_image(str(folder / name)).data, np.float32)
        assert pixels.shape == reference.shape and np.abs(pixels - reference).mean() < 12, name
        jpeg = thumbnail_jpeg(str(folder / name), "image")
        assert jpeg[:3] == b"\xff\xd8\xff" and Image.open(io.BytesIO(jpeg)).size[0] > 0


def test_waveforms_are_drawn_on_a_loudness_scale_shared_by_every_clip(tmp_path):
    """A tone 20 dB quieter draws a shorter waveform (it was scaled to its own peak)."""
    import soundfile as sf

    from ace_core.media.thumbnails import loudness_share, waveform_thumbnail

    tone = np.sin(np.linspace(0, 3000, 16000)).astype(np.float32)
    heights = []
    for name, gain in (("loud", 0.9), ("quiet", 0.09)):
        sf.write(tmp_path / f"{name}.wav", tone * gain, 16000)
        im = np.asarray(waveform_thumbnail(str(tmp_path / f"{name}.wav"), 128).convert("L"))
        heights.append(int((im[:, 64] < 128).sum()))  # drawn pixels in a middle column
    assert heights[0] > heights[1] > 0
    assert loudness_share(1.0) == 1 and loudness_share(0.001) == 0 and loudness_share(0.0) == 0
    assert abs(loudness_share(0.1) - 2 / 3) < 1e-6  # -20 dBFS on a 60 dB scale
