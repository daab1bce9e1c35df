"""Media decoding: files to arrays ready for an encoder, or a one-line failure reason.

- images (Pillow): EXIF orientation, any mode (CMYK, 16-bit, palette, alpha, grayscale) to RGB,
  animated images to their first frame, a decompression-bomb limit;
- audio: ace_core/media/audio_decoding.py;
- video: N uniformly sampled frames with decord, PyAV as the fallback where decord fails or
  exceeds the per-file timeout; rotation metadata is honoured.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 0.25 GB of RGBA)
MIN_IMAGE_SIDE = 4  # px: a smaller image carries nothing an encoder can use
_BARE_PATH = re.compile(r"(?<![\w<'])/(?:[^\s'\"(),;]*/)?([^\s'\"(),;/]+)")


class DecodeError(Exception):
    """A file that cannot be decoded; the message is the one-line reason stored in items."""


@dataclass
class Decoded:
    """Decoded media plus what was learnt about the file (stored in items.parquet)."""

    data: Any  # PIL.Image (RGB) | float32 (samples,) | uint8 (n, H, W, 3)
    meta: dict[str, Any] = field(default_factory=dict)


def _one_line(e: BaseException, limit: int = 240) -> str:
    """``Type: first line of the message`` with each absolute path, quoted or bare (decord
    names its file unquoted), cut to the file's name; at most ``limit`` chars."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = re.sub(r"'([^']*/)([^'/]+)'", r"'\2'", msg)
    msg = _BARE_PATH.sub(r"\1", msg)
    out = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return out if len(out) <= limit else out[: limit - 3] + "..."


# ----------------------------------------------------------------------------- images


def register_image_formats() -> None:
    """Pillow's openers for the formats it does not read itself: HEIC/HEIF (pillow-heif;
    AVIF is Pillow's own). Idempotent; a missing pillow-heif leaves HEIC a failed file."""
    global _formats_registered
    if _formats_registered:
        return
    _formats_registered = True
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        logger.warning("pillow-heif is not installed: HEIC/HEIF photos cannot be decoded")
        return
    register_heif_opener()


_formats_registered = False


def decode_image(
    path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None
) -> Decoded:
    """Open an image as RGB (first frame, EXIF-transposed); refuse decompression bombs.

    ``min_side``: a JPEG may be decoded at a reduced DCT scale (1/2, 1/4 or 1/8: Pillow's
    draft mode) that keeps both sides >= ``min_side`` px, several times faster for large
    photos; the encoder resizes to its input side anyway. ``meta`` gives the stored size."""
    from PIL import Image, ImageOps

    register_image_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                with Image.open(path) as im:
                    n_frames = getattr(im, "n_frames", 1)
                    if n_frames > 1 and im.format == "GIF":
                        _check_gif_frames(im, n_frames, max_pixels)
                    im.seek(0)
                    _check_pixels(im, max_pixels)
                    stored = im.size
                    if min_side and im.format == "JPEG":
                        im.draft(None, (min_side, min_side))
                    im.load()
                    loaded = im.size
                    try:
                        im = ImageOps.exif_transpose(im)
                    except Exception as e:  # noqa: BLE001 - broken EXIF: keep pixels as stored
                        logger.debug("ignoring broken EXIF in %s: %s", path, e)
                    rgb = to_rgb(im)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DecodeError(f"decompression bomb refused: {_one_line(e)}") from e
    except DecodeError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files
        raise DecodeError(_one_line(e)) from e
    w, h = stored if rgb.size == loaded else stored[::-1]  # EXIF may swap the sides
    if min(w, h) < MIN_IMAGE_SIDE:
        raise DecodeError(
            f"image too small to embed: {w}x{h} px (at least {MIN_IMAGE_SIDE} px a side)"
        )
    return Decoded(rgb, {"width": w, "height": h, "n_frames": n_frames})


def pixels_to_decode(path: str, min_side: int | None = None) -> int:
    """How many pixels decoding the image at ``path`` would hold, read from its header (no
    pixel is decoded): a JPEG at the reduced scale ``decode_image`` would use for
    ``min_side``, any other format at full size. 0 when Pillow cannot read the header."""
    from PIL import Image

    register_image_formats()
    try:
        with Image.open(path) as im:
            if min_side and im.format == "JPEG":
                im.draft(None, (min_side, min_side))
            w, h = im.size
    except Exception:  # noqa: BLE001 - not an image Pillow reads: decode_image says why
        return 0
    return w * h


def _check_pixels(im: Any, max_pixels: int) -> None:
    w, h = im.size
    if w * h > max_pixels:
        raise DecodeError(f"decompression bomb refused: {w}x{h} exceeds {max_pixels} pixels")
    # GIF frames can claim extents beyond the logical screen
    tile = getattr(im, "tile", None) or []
    for t in tile:
        box = t[1] if len(t) > 1 else None
        if box and len(box) == 4 and (box[2] - box[0]) * (box[3] - box[1]) > max_pixels:
            raise DecodeError("decompression bomb refused: frame extents exceed the pixel limit")


def _check_gif_frames(im: Any, n_frames: int, max_pixels: int, cap: int = 2000) -> None:
    """GIF frames may claim extents far beyond the logical screen: refuse any such frame."""
    for i in range(1, min(n_frames, cap)):
        im.seek(i)
        _check_pixels(im, max_pixels)


def to_rgb(im: Any) -> Any:
    """Any Pillow mode to 8-bit RGB; alpha is composited over white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = Image.fromarray(((arr - lo) * scale).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


# ----------------------------------------------------------------------------- video


def decode_video(
    path: str, *, n_frames: int = 8, size: int | None = 224, timeout_s: float = 60.0
) -> Decoded:
    """``n_frames`` uniformly sampled RGB frames as uint8 (n, H, W, 3), rotation applied.

    decord runs first in a helper thread bounded by ``timeout_s``; on failure or timeout PyAV
    decodes the file instead. A file both reject fails with both reasons. decord applies the
    display rotation itself; on the PyAV path the frames are rotated here.
    """
    pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="decord")
    fut = pool.submit(_decode_decord, path, n_frames, size)
    try:
        frames, meta = fut.result(timeout=timeout_s)
        meta["decoder"] = "decord"
    except Exception as e:  # noqa: BLE001 - includes TimeoutError
        first = "timed out" if isinstance(e, cf.TimeoutError) else _one_line(e)
        logger.debug("decord failed on %s (%s); trying PyAV", path, first)
        try:
            frames, meta = _decode_pyav(path, n_frames, size)
            meta["decoder"] = "pyav"
        except Exception as e2:  # noqa: BLE001
            raise DecodeError(f"decord: {first}; pyav: {_one_line(e2)}") from e2
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    meta["height"], meta["width"] = int(frames.shape[1]), int(frames.shape[2])
    return Decoded(frames, meta)


def _sample_indices(total: int, n: int) -> np.ndarray:
    """Centres of ``n`` equal segments of [0, total)."""
    return np.clip(((np.arange(n) + 0.5) * total / n).astype(np.int64), 0, total - 1)


def _resize_dims(w: int, h: int, size: int | None) -> tuple[int, int]:
    if not size or min(w, h) <= size:
        return w, h
    s = size / min(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _decode_decord(path: str, n_frames: int, size: int | None) -> tuple[np.ndarray, dict]:
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    total = len(vr)
    if total <= 0:
        raise DecodeError("no video frames")
    h, w = vr[0].shape[:2]
    tw, th = _resize_dims(w, h, size)
    if (tw, th) != (w, h):
        vr = decord.VideoReader(path, num_threads=1, width=tw, height=th)
    frames = vr.get_batch(list(_sample_indices(total, n_frames))).asnumpy()
    fps = float(vr.get_avg_fps() or 0.0)
    meta = {"n_frames": total, "duration_s": total / fps if fps > 0 else None}
    return frames, meta


def _decode_pyav(path: str, n_frames: int, size: int | None) -> tuple[np.ndarray, dict]:
    import av

    with av.open(path) as c:
        if not c.streams.video:
            raise DecodeError("no video stream")
        stream = c.streams.video[0]
        decoded, rotation = [], 0
        for frame in c.decode(stream):
            if not decoded:  # PyAV: counter-clockwise degrees of the display matrix
                rotation = int(round(-(getattr(frame, "rotation", 0) or 0))) % 360
            decoded.append(frame.to_ndarray(format="rgb24"))
        duration = float(stream.duration * stream.time_base) if stream.duration else None
    if not decoded:
        raise DecodeError("no decodable video frames")
    picked = [decoded[i] for i in _sample_indices(len(decoded), n_frames)]
    if rotation:  # clockwise display rotation
        picked = [np.ascontiguousarray(np.rot90(f, k=-(rotation // 90))) for f in picked]
    h, w = picked[0].shape[:2]
    tw, th = _resize_dims(w, h, size)
    if (tw, th) != (w, h):
        from PIL import Image

        picked = [np.asarray(Image.fromarray(f).resize((tw, th), Image.BILINEAR)) for f in picked]
    return np.stack(picked), {
        "n_frames": len(decoded),
        "duration_s": duration,
        "rotation": rotation,
    }
