import numpy as np
import pytest

from ace_core.media.decoding import Decoded, DecodeError
from ace_core.media.discovery import discover
from ace_core.media.embed_config import PipelineConfig
from ace_core.media.pipeline import embed_files


@pytest.mark.slow  # over 30 s: `make test-slow` (CI runs it)
def test_every_shared_media_file_is_embedded_or_failed_with_reason(shared_media, tiny_encoders):
    found = discover(shared_media)
    results = list(embed_files(found.files, tiny_encoders, PipelineConfig(batch_size=16)))
    assert sorted(r.file.item_id for r in results) == sorted(f.item_id for f in found.files)
    by_path = {r.file.path: r for r in results}
    for r in results:
        if r.error is None:
            assert r.embedding.shape == (512,) and np.isfinite(r.embedding).all()
            assert abs(np.linalg.norm(r.embedding) - 1) < 1e-4
        else:
            assert r.embedding is None and r.error.strip() and "\n" not in r.error
    for must_fail in [
        "odd/pillow/decompression_bomb.gif",
        "odd/pillow/decompression_bomb_extents.gif",
        "odd/decord/tests/test_data/corrupted.mp4",
        "odd/pydub/test1_empty.wav",
    ]:
        assert by_path[must_fail].error, must_fail
    ok = {
        m: sum(1 for r in results if r.error is None and r.file.modality == m)
        for m in ("image", "audio", "video")
    }
    assert ok["image"] >= 80 and ok["audio"] >= 160 and ok["video"] >= 10
    # non-media files never reach the decoders
    assert {"imageio/stent.npz", "imageio/IMG_0001__frame.json"} <= {p for p, _ in found.skipped}


class _FlakyEncoder:
    """Fails on any batch holding the 'poison' input: the pipeline must isolate it."""

    modality = "image"
    dim = 3

    def prepare(self, decoded):
        return decoded.data

    def embed(self, inputs):
        if "poison" in inputs:
            raise RuntimeError("bad input")
        return np.tile(np.array([1.0, 0, 0], np.float32), (len(inputs), 1))


def test_one_bad_item_never_fails_its_batch(tmp_path):
    from ace_core.media.discovery import MediaFile

    files = [MediaFile(f"{i}.png", f"/x/{i}", f"id{i}", "image", 1) for i in range(7)]

    def decoder(f):
        if f.path == "3.png":
            raise DecodeError("broken file")
        return Decoded("poison" if f.path == "5.png" else "fine")

    results = list(
        embed_files(
            files,
            {"image": _FlakyEncoder()},
            PipelineConfig(batch_size=4),
            decoders={"image": decoder},
        )
    )
    errors = {r.file.path: r.error for r in results if r.error}
    assert errors == {"3.png": "broken file", "5.png": "encoder failed: RuntimeError: bad input"}
    assert len(results) == 7
