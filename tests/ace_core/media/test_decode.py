import time

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from ace_core.media import decoding as decode
from ace_core.media.audio_decoding import decode_audio
from ace_core.media.decoding import DecodeError, decode_image, decode_video


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "o.jpg", exif=exif)
    out = decode_image(str(tmp_path / "o.jpg"))
    assert out.data.size == (20, 40)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "P", "RGBA", "LA", "L", "1"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    im = Image.new(mode, (16, 16))
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    im.save(path)
    out = decode_image(str(path))
    assert out.data.mode == "RGB" and out.data.size == (16, 16)


def test_alpha_is_composited_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert np.asarray(decode_image(str(tmp_path / "t.png")).data).min() == 255


def test_animated_image_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = decode_image(str(tmp_path / "a.gif"))
    assert out.meta["n_frames"] == 2
    r, g, b = np.asarray(out.data)[0, 0]
    assert r > 200 and b < 50


def test_pixel_limit_refuses_big_images(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode_image(str(tmp_path / "big.png"), max_pixels=5000)


@pytest.mark.parametrize("name", ["decompression_bomb.gif", "decompression_bomb_extents.gif"])
def test_shared_decompression_bombs_fail_cleanly(shared_media, name):
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode_image(str(shared_media / "odd/pillow" / name))


def test_audio_is_mono_48k(tmp_path):
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1)
    sf.write(tmp_path / "s.wav", stereo.astype(np.float32), 22050)
    out = decode_audio(str(tmp_path / "s.wav"))
    assert out.data.ndim == 1 and out.data.dtype == np.float32
    assert abs(out.data.shape[0] - 48000) <= 2
    assert out.meta == {"duration_s": pytest.approx(1.0), "sample_rate": 22050}


def test_empty_audio_fails(shared_media):
    with pytest.raises(DecodeError, match="empty audio"):
        decode_audio(str(shared_media / "odd/pydub/test1_empty.wav"))


@pytest.mark.parametrize(
    "name",
    [
        "test1.mp3",
        "format_test.m4a",
        "test5.webm",
        "bach.ogg",
        "test-192khz-32bit.flac",
        "test1-24bit.wav",
    ],
)
def test_shared_audio_formats_decode(shared_media, name):
    out = decode_audio(str(shared_media / "odd/pydub" / name))
    assert out.data.size > 48000 * 0.5 and np.isfinite(out.data).all()


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_video_rotation_is_honoured_by_both_decoders(shared_media, angle):
    path = str(shared_media / f"odd/decord/tests/test_data/video_{angle}.mov")
    by_decord = decode_video(path, n_frames=3)
    assert by_decord.meta["decoder"] == "decord" and by_decord.data.shape[0] == 3
    frames, meta = decode._decode_pyav(path, 3, 224)
    assert meta["rotation"] == angle
    portrait = angle in (90, 270)
    h, w = by_decord.data.shape[1:3]
    assert (h > w) == portrait
    assert frames.shape == by_decord.data.shape
    assert np.abs(frames.astype(int) - by_decord.data.astype(int)).mean() < 12


def test_corrupted_video_fails_cleanly(shared_media):
    with pytest.raises(DecodeError, match="decord: .*pyav: "):
        decode_video(str(shared_media / "odd/decord/tests/test_data/corrupted.mp4"))


def test_hanging_decord_falls_back_to_pyav(shared_media, monkeypatch):
    def hang(*a, **k):
        time.sleep(5)
        raise AssertionError("unreachable")

    monkeypatch.setattr(decode, "_decode_decord", hang)
    started = time.perf_counter()
    out = decode_video(str(shared_media / "imageio/realshort.mp4"), n_frames=3, timeout_s=0.5)
    assert out.meta["decoder"] == "pyav" and out.data.shape[0] == 3
    assert time.perf_counter() - started < 4


def _photo(path, size, exif=None):
    """A smooth colour field with detail (a JPEG that compresses like a photo)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=90, **({"exif": exif} if exif else {}))
    return str(path)


def test_a_large_jpeg_decodes_at_a_reduced_scale_no_smaller_than_asked(tmp_path):
    path = _photo(tmp_path / "big.jpg", (1600, 1200))
    full, draft = decode_image(path), decode_image(path, min_side=224)
    assert full.data.size == (1600, 1200)
    assert draft.data.size == (400, 300)  # 1/4: the largest DCT scale keeping both >= 224
    assert draft.meta["width"] == 1600 and draft.meta["height"] == 1200  # as stored
    small = np.asarray(full.data.resize((400, 300), Image.BOX), np.float32)
    assert np.abs(small - np.asarray(draft.data, np.float32)).mean() < 3  # same picture


def test_a_draft_decode_keeps_exif_orientation_and_leaves_other_formats_alone(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = decode_image(_photo(tmp_path / "r.jpg", (1600, 800), exif), min_side=224)
    assert out.data.size == (400, 800)  # 1/2 scale (800 x 400 loaded), then rotated
    assert (out.meta["width"], out.meta["height"]) == (800, 1600)
    Image.new("RGB", (1600, 1200)).save(tmp_path / "p.png")
    assert decode_image(str(tmp_path / "p.png"), min_side=224).data.size == (1600, 1200)


def test_draft_decoding_follows_the_pipeline_setting(tmp_path):
    from ace_core.media.discovery import MediaFile
    from ace_core.media.embed_config import PipelineConfig
    from ace_core.media.pipeline import default_decoders

    path = _photo(tmp_path / "big.jpg", (1600, 1200))
    f = MediaFile(path="big.jpg", abs_path=path, item_id="0" * 64, modality="image", bytes=0)
    on = default_decoders(PipelineConfig(), image_side=224)["image"](f)
    off = default_decoders(PipelineConfig(jpeg_draft=False), image_side=224)["image"](f)
    assert on.data.size == (400, 300) and off.data.size == (1600, 1200)
