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
    """Peak amplitude per column about the middle line, on a loudness scale shared by every
    clip (decibels from -60 dBFS to full scale), so a quiet sound draws small."""
    from PIL import Image, ImageDraw

    samples = decode_audio(location, sample_rate=8000).data
    im = Image.new("RGB", (size, size // 2), "white")
    draw, mid = ImageDraw.Draw(im), size // 4
    draw.line([(0, mid), (size, mid)], fill=(200, 210, 230))
    for x, chunk in enumerate(_chunks(samples, size)):
        h = int(loudness_share(float(abs(chunk).max(initial=0))) * (mid - 2))
        if h:
            draw.line([(x, mid - h), (x, mid + h)], fill=(40, 90, 200))
    return im


def loudness_share(peak: float, floor_db: float = -60.0) -> float:
    """A peak amplitude (1.0 = full scale) as a share of the drawn height: 0 at ``floor_db``
    and below, 1 at full scale, linear in decibels between."""
    if peak <= 0:
        return 0.0
    db = 20 * np.log10(min(peak, 1.0))
    return float(np.clip(1 - db / floor_db, 0.0, 1.0))


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
