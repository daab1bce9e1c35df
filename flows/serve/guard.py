"""What guards the service: the token (query, header or the page's cookie, compared in
constant time), error bodies without server paths, a bound on request bodies checked before
they are spooled, and deadlines for a request's headers and body (a client that never
finishes them is closed, not held), and the service's own temp folder (what a killed service
left there is removed by the next one)."""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import shutil
import tempfile
from pathlib import Path

import h11
from fastapi import Request
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from ace_index.storage.store.disk import pid_alive


def token_ok(request: Request, token: str | None) -> bool:
    """The token from the query, an Authorization header or the page's cookie (compared in
    constant time); True when the service has none."""
    if not token:
        return True
    given = (
        request.query_params.get("token")
        or request.headers.get("authorization", "").removeprefix("Bearer ")
        or request.cookies.get(TOKEN_COOKIE, "")
    )
    return hmac.compare_digest(given.encode(), token.encode())


def own_tempdir() -> Path:
    """A temp folder of this service process, made the process's default (uploads spooled
    by Starlette, examples' copies, temporary renditions), after removing those of services
    that are gone: a service killed mid-upload (kill -9) leaves its files to the next."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{TEMP_PREFIX}*"):
        pid = old.name.removeprefix(TEMP_PREFIX)
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = base / f"{TEMP_PREFIX}{os.getpid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(mine)
    return mine


def public(message: str) -> str:
    """An error message without server paths (for response bodies)."""
    return _PATH.sub("<path>", message)


_PATH = re.compile(r"(?<![\w<])/[^\s'\"(),;]+")
TOKEN_COOKIE = "ace_token"
TEMP_PREFIX = "ace-serve-"


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with a 413 before the
    app reads it, by its Content-Length at once or, sent without one, as soon as the bytes
    received pass the limit (nothing past it is spooled to disk): the app is then told the
    client left, and whatever it answers is replaced by the 413."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = JSONResponse(
            {"detail": f"request body too large (at most {self.limit} bytes)"},
            413,
            headers={"connection": "close"},
        )
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await too_large(scope, receive, send)
        received, refused = 0, False

        async def bounded_receive():
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                refused = True
                return {"type": "http.disconnect"}
            return message

        async def answer(message):
            if not refused:
                await send(message)
            elif message["type"] == "http.response.start":
                await too_large(scope, receive, send)

        await self.app(scope, bounded_receive, answer)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for a request's headers and body.

    One timer per connection, replaced (never stacked) each time it is armed: the headers
    deadline runs from the connection's start or its last response, the body deadline from
    the request's headers. A stale timer of an earlier request never closes a kept-alive
    connection (issue 42: that dropped 0.35-1.4% of searches under 32 clients)."""

    header_timeout_s = 10.0
    body_timeout_s = 120.0  # a 64 MiB upload at about 0.5 MB/s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._header_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        waiting = self.conn.their_state == h11.IDLE
        super().handle_events()
        if waiting and self.conn.their_state == h11.SEND_BODY:
            self._arm(self.body_timeout_s, self._body_deadline)
        elif waiting and self.conn.their_state != h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state == h11.IDLE:
            self._arm(self.header_timeout_s, self._header_deadline)

    def _arm(self, seconds: float, deadline) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_deadline(self) -> None:
        """Close a connection still waiting for a request's headers (none is being served)."""
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.conn.their_state == h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def _body_deadline(self) -> None:
        """Close a connection whose request body is still arriving."""
        if self.conn.their_state == h11.SEND_BODY and not self.transport.is_closing():
            self.transport.close()
