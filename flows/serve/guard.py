"""What guards the service: the token (query, header or the page's cookie, compared in
constant time), error bodies without server paths, and a deadline for request headers (a
client that never finishes its headers is closed, not held)."""

from __future__ import annotations

import asyncio
import hmac
import re

import h11
from fastapi import Request
from uvicorn.protocols.http.h11_impl import H11Protocol


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


def public(message: str) -> str:
    """An error message without server paths (for response bodies)."""
    return _PATH.sub("<path>", message)


_PATH = re.compile(r"(?<![\w<])/[^\s'\"(),;]+")
TOKEN_COOKIE = "ace_token"


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self.loop.call_later(self.header_timeout_s, self._header_deadline)

    def _header_deadline(self) -> None:
        """Close a connection still waiting for a request's headers (none is being served)."""
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.conn.their_state == h11.IDLE and not self.transport.is_closing():
            self.transport.close()
