"""Reading a file the user (or a damaged store) hands us without hanging or growing without
bound: only regular files, opened non-blocking (a FIFO never blocks the open), at most
``limit`` bytes (an endless file or a device such as /dev/zero stops there)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ace_core.errors import AceInputError


class UnboundedInputError(AceInputError):
    """A file that is not a regular file, or larger than its limit."""


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (FileNotFoundError when it
    does not exist; UnboundedInputError when it is not a regular file or is too large)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnboundedInputError(f"{path}: not a regular file")
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise UnboundedInputError(f"{path}: larger than {_size(limit)}")
    return data


def read_text_bounded(path: str | os.PathLike, limit: int) -> str:
    """``read_bounded`` decoded as UTF-8 (a clear error for other bytes)."""
    try:
        return read_bounded(path, limit).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnboundedInputError(f"{Path(path)}: not UTF-8 text (byte {e.start})") from None


def one_reason(e: BaseException) -> str:
    """A short reason for a failed read or parse (the OS error's text, or the message)."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.0f} {unit}"
        n /= 1024
    return str(n)
