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

Descriptors can still run short before deadlines free them (many clients opening
connections and sending nothing). When the process's client connections come
within a reserve of its open files limit, each new connection closes the oldest
one still waiting for its request head, so a client that sends its request at once
is served rather than turned away at ``accept``.

A response goes out in one write: uvicorn writes its head and its body separately,
and on loopback each write wakes the client (a second system call and a second
wake-up per request, about a tenth of a lone REST write). :class:`OneWrite` holds
the head until the body's first write, or until the end of the event-loop turn
for a response that streams (SSE) or has no body.
"""

from __future__ import annotations

import asyncio
import resource
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rtdb.server.rest import LONE_EXTENSION

_TIMEOUT_BODY = b"request head not sent in time\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


FD_RESERVE_MIN = 32
"""Descriptors kept for what is not a client connection (SQLite files, the listening socket,
the event loop's own), at least; a sixteenth of the limit when that is more."""


def connection_budget() -> int:
    """How many client connections the open files limit leaves room for."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    return soft - max(FD_RESERVE_MIN, soft // 16)


class HttpProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    waiting: dict[HttpProtocol, None] = {}
    """The connections whose request head is due, oldest first (one per configured class)."""
    http_open = 0
    """How many of the server's connections speak HTTP (the others are WebSockets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        type(self).http_open += 1
        self._start_head_clock()
        if len(self.connections) > connection_budget():
            self._close_oldest_waiting()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()  # a later request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and cycle is not None:  # a request (not an upgrade): its task has not run yet
            cycle.transport = OneWrite(self.transport, self.loop)  # type: ignore[assignment]
            self.scope.setdefault("extensions", {})[LONE_EXTENSION] = self.is_lone  # type: ignore[assignment]

    def is_lone(self) -> bool:
        """Whether this request is all the server serves now: no other request under way
        (a streamed response or a held long poll is one) and no WebSocket connection. Idle
        kept-alive connections do not count: a request arriving on one while a lone write
        commits waits for that commit, as it would behind any busy turn of the event loop."""
        return len(self.tasks) <= 1 and len(self.connections) == self.http_open

    def handle_websocket_upgrade(self) -> None:
        type(self).http_open -= 1  # the connection is a WebSocket's from now on
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        type(self).http_open -= 1
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)
            self.waiting[self] = None

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
            self.waiting.pop(self, None)

    def _close_oldest_waiting(self) -> None:
        for oldest in self.waiting:
            if oldest is not self:
                oldest._head_timed_out()
                return

    def _head_timed_out(self) -> None:
        self._stop_head_clock()
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


class OneWrite:
    """The transport as one response sees it: the first write (the head) waits for the
    next one, or for the end of the event-loop turn, so that a head and a short body
    reach the client as one write. Order is kept: held bytes go out before anything later."""

    __slots__ = ("_transport", "_loop", "_held", "_first")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self.flush)
            return
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def http_protocol_class(header_timeout: float) -> type[HttpProtocol]:
    """What uvicorn's ``http`` setting takes: :class:`HttpProtocol` with this deadline."""

    class Configured(HttpProtocol):
        pass

    Configured.header_timeout = header_timeout
    Configured.waiting = {}
    Configured.http_open = 0
    return Configured
