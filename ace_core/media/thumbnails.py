"""Thumbnails of media files: the image itself, a video's first sampled frame, an audio
waveform. Each returns a PIL image at most ``size`` wide; ``jpeg_thumbnail`` encodes one."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ace_core.media.audio_decoding import decode_audio
from ace_core.media.decoding import decode_image, decode_video


def image_thumbnail(location: str, size: int) -> Any:
    return decode_image(location).data


def video_thumbnail(location: str, size: int) -> Any:
    from PIL import Image

    return Image.fromarray(decode_video(location, n_frames=1).data[0])


def waveform_thumbnail(location: str, size: int) -> Any:
    """Peak amplitude per column, drawn about the middle line, scaled to the clip's peak."""
    from PIL import Image, ImageDraw

    samples = decode_audio(location, sample_rate=8000).data
    im = Image.new("RGB", (size, size // 2), "white")
    draw, mid = ImageDraw.Draw(im), size // 4
    cols = [abs(c).max(initial=0) for c in _chunks(samples, size)]
    peak = max(max(cols, default=0), 1e-6)
    for x, v in enumerate(cols):
        h = int(v / peak * (mid - 2))
        draw.line([(x, mid - h), (x, mid + h)], fill=(40, 90, 200))
    return im


def _chunks(samples: np.ndarray, n: int) -> list[np.ndarray]:
    step = max(1, len(samples) // n)
    return [samples[i : i + step] for i in range(0, step * n, step)][:n]


def jpeg_thumbnail(image: Any, size: int = 256) -> bytes:
    """``image`` (PIL) as a JPEG no larger than ``size`` on either side."""
    im = image.convert("RGB")
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
