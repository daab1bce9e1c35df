"""Browser-playable renditions (ace_core/media/renditions.py, query/rendition_cache.py): what a
browser plays is recognised by container and codecs, anything else becomes an H.264/AAC MP4
with the same frames and length; the kept renditions stay within their bound, least recently
served evicted first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from ace_core.media.renditions import RenditionError, playable_as_is, write_rendition
from ace_index.query.rendition_cache import RenditionCache

SHARED = Path(__file__).resolve().parents[4] / "shared" / "media"


def _mpeg4_part2(path: Path, frames: int = 12) -> Path:
    """A video browsers do not play (MPEG-4 Part 2 in MP4, as the sample corpus once wrote)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for k in range(frames):
            img = np.full((48, 64, 3), 20 * k % 255, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def _streams(path: Path) -> dict:
    import av

    with av.open(str(path)) as c:
        out = {s.type: s.codec_context.name for s in c.streams}
        out["frames"] = sum(1 for _ in c.decode(video=0)) if c.streams.video else 0
        out["seconds"] = c.duration / 1e6
    return out


def test_an_mpeg4_part2_video_becomes_h264_with_every_frame(tmp_path):
    src = _mpeg4_part2(tmp_path / "old.mp4")
    assert not playable_as_is(src)
    assert write_rendition(src, tmp_path / "r.mp4") == "video/mp4"
    got = _streams(tmp_path / "r.mp4")
    assert got["video"] == "h264" and got["frames"] == 12 and abs(got["seconds"] - 1.5) < 0.2
    assert playable_as_is(tmp_path / "r.mp4")


def test_the_sample_corpus_video_and_wav_play_as_they_are(tmp_path):
    from ace_core.synth import CorpusCounts, write_sample_corpus

    write_sample_corpus(tmp_path, seed=1, counts=CorpusCounts(images=0, audio=1, videos=1))
    assert all(playable_as_is(p) for p in [*tmp_path.glob("video/*"), *tmp_path.glob("audio/*")])


def test_a_sound_browsers_do_not_play_becomes_aac(tmp_path):
    import soundfile as sf

    tone = np.sin(np.linspace(0, 2000, 22050 * 2)).astype(np.float32)
    sf.write(tmp_path / "tone.aiff", tone, 22050, format="AIFF")
    assert not playable_as_is(tmp_path / "tone.aiff")
    assert write_rendition(tmp_path / "tone.aiff", tmp_path / "r.mp4") == "audio/mp4"
    got = _streams(tmp_path / "r.mp4")
    assert got["audio"] == "aac" and "video" not in got and abs(got["seconds"] - 2.0) < 0.1


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/media is not here (a user's clone)")
def test_a_real_mkv_with_opus_sound_becomes_h264_and_aac(tmp_path):
    src = SHARED / "odd" / "decord" / "examples" / "flipping_a_pancake.mkv"
    assert not playable_as_is(src)  # Matroska: not a container every browser plays
    write_rendition(src, tmp_path / "r.mp4")
    got = _streams(tmp_path / "r.mp4")
    assert (got["video"], got["audio"]) == ("h264", "aac") and got["seconds"] > 9


def test_a_corrupt_file_is_a_rendition_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + os.urandom(4000))
    assert not playable_as_is(tmp_path / "bad.mp4")
    with pytest.raises(RenditionError):
        write_rendition(tmp_path / "bad.mp4", tmp_path / "r.mp4")


def test_the_cache_keeps_within_its_bound_and_evicts_the_least_recently_served(tmp_path):
    srcs = [_mpeg4_part2(tmp_path / f"v{i}.mp4", frames=8) for i in range(3)]
    one = write_rendition(srcs[0], tmp_path / "probe.mp4") and (tmp_path / "probe.mp4").stat()
    cache = RenditionCache(tmp_path / "renditions", max_bytes=int(one.st_size * 2.5))
    first, mime, temporary = cache.get("a", srcs[0], "video")
    assert mime == "video/mp4" and not temporary and first.parent == tmp_path / "renditions"
    cache.get("b", srcs[1], "video")
    old = time.time() - 100
    os.utime(first, (old, old))
    os.utime(tmp_path / "renditions" / "b.mp4", (old - 50, old - 50))  # b served longest ago
    again, _, _ = cache.get("a", srcs[0], "video")  # a kept one: served again, touched
    assert again == first and first.stat().st_mtime > old
    cache.get("c", srcs[2], "video")
    kept = sorted(p.name for p in (tmp_path / "renditions").iterdir())
    assert kept == ["a.mp4", "c.mp4"]  # b evicted; no temporary file left behind


def test_a_rendition_evicted_as_soon_as_it_is_in_place_is_still_served(tmp_path, monkeypatch):
    """Another item's ``evict`` runs outside this item's lock: it could remove the rendition
    between its rename into place and the open that serves it, and /play answered 500
    (issue 42). Here it does, at that very point, every time."""
    from ace_index.query import rendition_cache

    cache = RenditionCache(tmp_path / "renditions", max_bytes=1)  # any kept file is too many
    real_replace = os.replace

    def replace_then_evict(src, dst, **kw):
        real_replace(src, dst, **kw)
        if Path(dst).parent == cache.folder:
            assert cache.evict() == [Path(dst)]  # as another item's request would

    monkeypatch.setattr(rendition_cache.os, "replace", replace_then_evict)
    rendition = cache.open("a", _mpeg4_part2(tmp_path / "v.mp4"), "video")
    monkeypatch.undo()
    with os.fdopen(rendition.fd, "rb") as f:
        (tmp_path / "sent.mp4").write_bytes(f.read())
    assert not rendition.temporary and not rendition.path.exists()
    assert _streams(tmp_path / "sent.mp4")["frames"] == 12  # the whole rendition was served


def test_a_store_it_cannot_write_still_plays_from_a_temporary_file(tmp_path):
    folder = tmp_path / "renditions"
    folder.write_text("a file where the folder should be")  # fails as a read-only store does
    out, _, temporary = RenditionCache(folder).get("a", _mpeg4_part2(tmp_path / "v.mp4"), "video")
    assert temporary and out.exists() and out.parent != folder and _streams(out)["frames"] == 12
    out.unlink()
