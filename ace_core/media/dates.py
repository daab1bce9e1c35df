"""When a media file was made, for filtering and sorting by date: a photo's EXIF date
(DateTimeOriginal, else DateTime; the camera's local time as written), else the file's
modification time (UTC). ISO 8601 text, ``YYYY-MM-DDTHH:MM:SS``; None when neither is
readable."""

from __future__ import annotations

import os
import re
import time

EXIF_IFD, DATE_TIME_ORIGINAL, DATE_TIME = 0x8769, 36867, 306
_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def media_date(path: str, modality: str) -> tuple[str | None, str | None]:
    """(date, where it came from: "exif" or "file")."""
    if modality == "image":
        found = exif_date(path)
        if found:
            return found, "exif"
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None, None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mtime)), "file"


def exif_date(path: str) -> str | None:
    """The EXIF date of a photo, read from its header (no pixels decoded)."""
    from PIL import Image

    from ace_core.media.decoding import register_image_formats

    register_image_formats()
    try:
        with Image.open(path) as im:
            exif = im.getexif()
            raw = exif.get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME)
    except Exception:  # noqa: BLE001 - no readable EXIF: the file time is used
        return None
    m = _EXIF_DATE.match(str(raw or "").strip())
    if not m or m.group(1) == "0000":
        return None
    y, mo, d, h, mi, s = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"
