"""uvicorn's httptools protocol with a deadline on request heads.

uvicorn times out a kept-alive connection that stays idle between requests, but
not a connection that never completes a request head: a client that connects and
sends nothing, or a few bytes of a request line now and then, holds its file
descriptor for as long as it likes. Enough of them exhaust the process's open
files limit and every new client is turned away. :class:`HttpProtocol` gives each
request head ``header_timeout`` seconds, counted from the connection (its first
request) or from the first byte of a later request on the same connection, then
answers ``408`` and closes. WebSocket upgrades are requests like any other here:
their head has the same deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_BODY = b"request head not sent in time\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class HttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()  # a later request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def http_protocol_class(header_timeout: float) -> type[HttpProtocol]:
    """What uvicorn's ``http`` setting takes: :class:`HttpProtocol` with this deadline."""

    class Configured(HttpProtocol):
        pass

    Configured.header_timeout = header_timeout
    return Configured
