"""A response sent from an open descriptor of a regular file, with HTTP Range, built on
Starlette's public API only (issue 42: it overrode FileResponse's private ``_open_file``,
which any Starlette release may rename). The file is never opened again by path: /play
sends the rendition it checked, which an eviction may unlink meanwhile. One range per
request, as media players ask; several ranges are answered with the whole file (a server
may ignore Range), a malformed header with a 400, a range past the end with a 416."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from email.utils import formatdate

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response, StreamingResponse

CHUNK = 64 * 1024


class BadRange(ValueError):
    """A Range header this response cannot read (400)."""


class RangePastEnd(ValueError):
    """A range that starts at or past the end of the file (416)."""


class OpenFileResponse(Response):
    """``fd`` (open, read-only, a regular file) sent whole or in the one range asked for;
    the descriptor is closed once the response is done, however it ends."""

    def __init__(self, fd: int, media_type: str):
        st = os.fstat(fd)
        self.fd, self.size = fd, st.st_size
        # the file, not its mtime: the rendition cache touches a rendition each time it is
        #   served (its eviction order), and a player's If-Range must still match
        tag = hashlib.md5(f"{st.st_dev}-{st.st_ino}-{st.st_size}".encode(), usedforsecurity=False)
        self.validators = {
            "last-modified": formatdate(st.st_mtime, usegmt=True),
            "etag": f'"{tag.hexdigest()}"',
        }
        super().__init__(media_type=media_type, headers={"accept-ranges": "bytes"})

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.answer(Headers(scope=scope))(scope, receive, send)
        finally:
            os.close(self.fd)

    def answer(self, request: Headers) -> Response:
        """The response to a request with these headers: 200, 206, 400 or 416."""
        asked, if_range = request.get("range"), request.get("if-range")
        try:
            span = None
            if asked is not None and (if_range is None or if_range in self.validators.values()):
                span = byte_range(asked, self.size)
        except BadRange as e:
            return PlainTextResponse(str(e) or "Malformed range header", status_code=400)
        except RangePastEnd:
            return PlainTextResponse("", 416, headers={"content-range": f"bytes */{self.size}"})
        start, end = span or (0, self.size)
        headers = {"accept-ranges": "bytes", "content-length": str(end - start)}
        if span:
            headers["content-range"] = f"bytes {start}-{end - 1}/{self.size}"
        return StreamingResponse(
            self._chunks(start, end),
            status_code=206 if span else 200,
            media_type=self.media_type,
            headers={**headers, **self.validators},
        )

    def _chunks(self, start: int, end: int) -> Iterator[bytes]:
        while start < end:  # pread: no shared offset, so no seek to race with
            chunk = os.pread(self.fd, min(CHUNK, end - start), start)
            if not chunk:
                return
            start += len(chunk)
            yield chunk


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end), end exclusive, of a Range header naming one range of a file of
    ``size`` bytes; None (send it whole) when it names several."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        raise BadRange("Only support bytes range")
    parts = [p.strip() for p in spec.split(",") if p.strip() not in ("", "-")]
    if len(parts) != 1:
        if parts:
            return None
        raise BadRange("Range header: range must be requested")
    first, dash, last = (s.strip() for s in parts[0].partition("-"))
    if not dash or not (first or last).isdigit() or (first and last and not last.isdigit()):
        raise BadRange()
    if not first:  # bytes=-N: the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    if not 0 <= start < size:
        raise RangePastEnd()
    if start >= end:
        raise BadRange("Range header: start must be less than end")
    return start, end
