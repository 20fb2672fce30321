"""The native WebSocket protocol for ``/.ws`` under uvicorn.

``rtdb serve`` gives uvicorn :meth:`WsServer.protocol_class` as its ``ws``
implementation. uvicorn parses the HTTP request; on an upgrade it creates this
protocol and passes the request on. For ``/.ws`` the protocol answers the RFC 6455
handshake and reads frames with websockets' sans-I/O protocol
(:mod:`rtdb.server.wsframes`) and feeds complete messages straight into a
:class:`~rtdb.server.ws.Connection`: no ASGI message dicts, no queue hop and no
task per connection. Any other path goes to uvicorn's standard implementation
(and so to the ASGI app).

Sending is batched: an outbox that becomes non-empty marks its connection, and
one callback per event-loop turn writes every marked connection's frames with a
single ``writelines``, encoding each distinct message (the same push goes to many
connections) once. Keep-alive: one sweep per interval pings the connections that
were silent for a whole interval and drops those that stayed silent for the
next one; an idle connection holds no timer. A connection whose handshake request
is not complete ``header_timeout`` seconds after it opened gets ``408`` and is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl

from rtdb.protocol.codec import Frames
from rtdb.protocol.framing import DEFAULT_MAX_MESSAGE_CHARS
from rtdb.server.lp import Secondary
from rtdb.server.ws import (
    CLOSE_PROTOCOL_ERROR,
    CLOSE_SERVICE_RESTART,
    ENDPOINT_PATH,
    Connection,
    WsEndpoint,
    reset_frame,
)
from rtdb.server.wsframes import (
    CLOSE_GOING_AWAY,
    MAX_REQUEST_BYTES,
    WsPeer,
    handshake,
    request_path,
    text_frame,
)

log = logging.getLogger("rtdb.ws")

MAX_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_CHARS
WRITE_BUFFER_HIGH = 256 * 1024
"""Bytes buffered in a transport before the outbox holds further frames back."""

_Cache = dict[int, tuple[Frames, bytes]]


class WsServer:
    """Shared by every native connection of one endpoint: the write batching and the
    keep-alive sweep."""

    def __init__(self, endpoint: WsEndpoint, *, ping_interval: float | None = 20.0,
                 header_timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.ping_interval = ping_interval
        self.header_timeout = header_timeout  # seconds from connecting to a complete handshake request
        self.live: set[WsProtocol] = set()
        self._marked: list[WsProtocol] = []
        self._sweep: asyncio.TimerHandle | None = None

    def protocol_class(self) -> Callable[..., asyncio.Protocol]:
        """What uvicorn's ``ws`` setting takes: called with uvicorn's keyword arguments."""

        def create(config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> WsProtocol:
            return WsProtocol(self, config, server_state, app_state)

        return create

    def mark(self, protocol: WsProtocol) -> None:
        if not self._marked:
            asyncio.get_running_loop().call_soon(self._flush)
        self._marked.append(protocol)

    def _flush(self) -> None:
        marked, self._marked = self._marked, []
        cache: _Cache = {}
        for protocol in marked:
            try:
                protocol.flush(cache)
            except Exception:  # one broken socket must not keep the others waiting
                log.exception("websocket write failed")
                protocol.transport.abort()

    def add(self, protocol: WsProtocol) -> None:
        self.live.add(protocol)
        if self._sweep is None and self.ping_interval:
            self._sweep = asyncio.get_running_loop().call_later(self.ping_interval, self._keepalive)

    def discard(self, protocol: WsProtocol) -> None:
        self.live.discard(protocol)
        if not self.live and self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _keepalive(self) -> None:
        self._sweep = None
        for protocol in list(self.live):
            protocol.keepalive()
        if self.live and self.ping_interval:
            self._sweep = asyncio.get_running_loop().call_later(self.ping_interval, self._keepalive)


def _wire(frames: Frames, cache: _Cache) -> bytes:
    """The WebSocket frames of one message, built once per flush whoever it goes to."""
    hit = cache.get(id(frames))
    if hit is not None and hit[0] is frames:
        return hit[1]
    data = text_frame(frames[0]) if len(frames) == 1 else b"".join(map(text_frame, frames))
    cache[id(frames)] = (frames, data)  # holding ``frames`` keeps its id unique meanwhile
    return data


class WsProtocol(asyncio.Protocol):
    __slots__ = (
        "_deadline",
        "_delegate",
        "_head",
        "_heard",
        "_marked",
        "_pinged",
        "_pipe",
        "_piped",
        "_spliced",
        "_uvicorn",
        "_write_paused",
        "connection",
        "peer",
        "secondary",
        "server",
        "transport",
    )

    def __init__(self, server: WsServer, config: Any, server_state: Any, app_state: Any) -> None:
        self.server = server
        self.transport: Any = None
        self.connection: Connection | None = None
        self.peer: WsPeer | None = None
        self._uvicorn = (config, server_state, app_state)
        self._head = b""
        self._delegate: Any = None
        self._marked = False
        self._write_paused = False
        self._heard = True  # traffic since the last keep-alive sweep
        self._pinged = False
        self._deadline: asyncio.TimerHandle | None = None
        self.secondary: Secondary | None = None  # a socket upgrading a long-polling session
        self._pipe: asyncio.BaseTransport | None = None  # spliced through to the owning worker
        self._piped: bytearray | None = None  # bytes for the pipe while it connects
        self._spliced = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._uvicorn[1].connections.add(self)
        self._deadline = asyncio.get_running_loop().call_later(self.server.header_timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if connection is None:
            if self.secondary is not None:
                self._secondary_received(data)
            elif self._spliced:
                self._pipe_write(data)
            else:
                self._handshake(data)
            return
        self._heard = True
        peer = self.peer
        assert peer is not None
        for text in peer.receive(data):
            connection.feed(text)
        if not peer.open:  # the peer closed, or broke the protocol: websockets answered
            connection.close()
        self._write_protocol()

    def _write_protocol(self) -> None:
        """Write what websockets queued (pongs, closing frames); close the socket after a close."""
        assert self.peer is not None
        data, eof = self.peer.output()
        if data and not self.transport.is_closing():
            self.transport.write(data)
        if eof:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        server_state = self._uvicorn[1]
        server_state.connections.discard(self)
        self._stop_deadline()
        if self._delegate is not None:
            self._delegate.connection_lost(exc)
            return
        if self._pipe is not None:
            self._pipe.close()
        self.server.discard(self)
        if self.secondary is not None:  # the session stays on long-polling
            self.secondary.detach()
            self.secondary = None
        connection = self.connection
        if connection is None:
            return
        connection.close()
        task = asyncio.get_running_loop().create_task(connection.finish())
        server_state.tasks.add(task)
        task.add_done_callback(server_state.tasks.discard)

    def pause_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.pause_writing()
            return
        self._write_paused = True

    def resume_writing(self) -> None:
        if self._delegate is not None:
            self._delegate.resume_writing()
            return
        self._write_paused = False
        if self.connection is not None and (len(self.connection.outbox) or self.connection.outbox.closed):
            self._ready()

    def eof_received(self) -> bool | None:
        if self._delegate is not None:
            return self._delegate.eof_received()  # type: ignore[no-any-return]
        return None

    # -- uvicorn ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """uvicorn is shutting down: close with 1012 (service restart; the clients reconnect)."""
        if self._delegate is not None:
            self._delegate.shutdown()
        elif self.connection is not None and self.secondary is None:
            self.connection.abort(CLOSE_SERVICE_RESTART)
        else:
            self.transport.close()

    # -- handshake ----------------------------------------------------------------------
    def _handshake(self, data: bytes) -> None:
        if self._delegate is not None:
            self._delegate.data_received(data)
            return
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > MAX_REQUEST_BYTES:
                self._reject(431, "Request Header Fields Too Large", "request headers too large")
            else:
                self._head = head
            return
        self._head = b""
        self._stop_deadline()  # the request head is complete: what follows is answered at once
        if request_path(head).rstrip("/") != ENDPOINT_PATH:  # /.ws or /.ws/
            self._delegate_to_uvicorn(head)
            return
        owner = self._owner(head)
        if owner is not None:
            self._splice(owner, head)
            return
        answer = handshake(head[: end + 4])
        self.transport.write(answer.response)
        request = answer.request
        if request is None:
            self.transport.close()
            return
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        _, _, query = request.path.partition("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if "s" in params:
            self._open_secondary(params["s"], request.headers.get("Host", ""), head[end + 4 :])
            return
        connection = self.server.endpoint.open(params, request.headers.get("Host", ""))
        connection.outbox.on_ready = self._ready
        connection.on_pause = self._pause_reading
        self.connection = connection
        self.peer = WsPeer(MAX_MESSAGE_BYTES)
        self.server.add(self)
        self._ready()  # the handshake message is queued
        rest = head[end + 4 :]
        if rest:
            self.data_received(rest)

    # -- the upgrade from long-polling --------------------------------------------------
    def _open_secondary(self, sid: str, host: str, rest: bytes) -> None:
        """``/.ws?s=<session>``: the client moves its long-polling session here. Unknown (or
        ended, or already upgrading) sessions get a reset, never a fresh handshake."""
        self.peer = WsPeer(MAX_MESSAGE_BYTES)
        self.server.add(self)
        lp = self.server.endpoint.lp
        session = lp.upgrade_target(sid) if lp is not None else None
        if session is None:
            self._reset(host)
            return
        self.secondary = Secondary(session, host, self._send_text, self._promote, self._reset)
        session.secondary = self.secondary
        if rest:
            self._secondary_received(rest)

    def _secondary_received(self, data: bytes) -> None:
        self._heard = True
        peer = self.peer
        assert peer is not None
        for text in peer.receive(data):
            secondary = self.secondary
            if secondary is None:
                break
            if not secondary.receive(text):
                log.info("closing an upgrading WebSocket: bad or too much data before the switch")
                secondary.detach()
                self.secondary = None
                self._send_close(CLOSE_PROTOCOL_ERROR)
                return
        if not peer.open and self.secondary is not None:
            self.secondary.detach()
            self.secondary = None
        self._write_protocol()

    def _send_text(self, text: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(text_frame(text))

    def _promote(self, connection: Connection, buffered: list[str]) -> None:
        """The long-polling ``n`` was processed: this socket carries the connection from now on;
        the data messages it buffered run first."""
        self.secondary = None
        self.connection = connection
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        connection.outbox.on_ready = self._ready
        connection.on_pause = self._pause_reading
        for text in buffered:
            connection.feed(text)
        self._ready()

    def _reset(self, host: str) -> None:
        if self.secondary is not None:
            self.secondary.detach()
            self.secondary = None
        self._send_text(reset_frame(host))
        self._send_close(1000)

    # -- --workers: a socket for another worker's session -------------------------------
    def _owner(self, head: bytes) -> str | None:
        """The Unix socket of the worker owning the session an upgrade names, if another."""
        lp = self.server.endpoint.lp
        if lp is None or lp.forwarder is None or self._spliced:
            return None
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        _, _, query = line.split(" ")[1].partition("?") if line.count(" ") == 2 else ("", "", "")
        sid = dict(parse_qsl(query)).get("s")
        owner = self.server.endpoint.owner_of(sid) if sid else None
        if owner is None or owner == self.server.endpoint.worker:
            return None
        return cast(str | None, lp.forwarder.socket_of(owner))

    def _splice(self, path: str, head: bytes) -> None:
        """Pass the socket's bytes both ways to the worker at ``path`` (its owner)."""
        self._spliced = True
        self._piped = bytearray(head)
        asyncio.get_running_loop().create_task(self._connect_pipe(path))

    async def _connect_pipe(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            pipe, _ = await loop.create_unix_connection(lambda: _Pipe(self.transport), path)
        except OSError:  # the owner is gone, and its sessions with it: answer here (a reset)
            head, self._piped = bytes(self._piped or b""), None
            self._head = head
            self._handshake(b"")
            return
        if self.transport.is_closing():
            pipe.close()
            return
        self._pipe = pipe
        data, self._piped = bytes(self._piped or b""), None
        pipe.write(data)

    def _pipe_write(self, data: bytes) -> None:
        if self._pipe is not None:
            self._pipe.write(data)  # type: ignore[attr-defined]
        elif self._piped is not None:
            self._piped += data

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_timed_out(self) -> None:
        """The client did not complete its handshake request within ``header_timeout``."""
        self._deadline = None
        if self.connection is None and self._delegate is None and not self.transport.is_closing():
            self._reject(408, "Request Timeout", "handshake request not sent in time")

    def _reject(self, status: int, reason: str, body: str) -> None:
        data = (body + "\n").encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode("ascii") + data
        )
        self.transport.close()

    def _delegate_to_uvicorn(self, head: bytes) -> None:
        """Not our path: uvicorn's own implementation runs the ASGI app for it."""
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )

        config, server_state, app_state = self._uvicorn
        server_state.connections.discard(self)
        delegate = WebSocketsSansIOProtocol(config=config, server_state=server_state, app_state=app_state)
        self._delegate = delegate
        delegate.connection_made(self.transport)
        delegate.data_received(head)

    # -- sending ------------------------------------------------------------------------
    def _ready(self) -> None:
        if not self._marked:
            self._marked = True
            self.server.mark(self)

    def flush(self, cache: _Cache) -> None:
        """Write what the outbox holds (called once per loop turn while marked)."""
        self._marked = False
        connection = self.connection
        transport = self.transport
        peer = self.peer
        if connection is None or peer is None or not peer.open:
            return
        outbox = connection.outbox
        if transport.is_closing():
            outbox.take()
            return
        if self._write_paused:
            if outbox.closed:
                transport.abort()  # a closed outbox behind a stuck socket: nothing more will get through
            return
        batch = outbox.take()
        if len(batch) == 1:
            transport.write(_wire(batch[0], cache))
        elif batch:
            transport.writelines([_wire(frames, cache) for frames in batch])
        if outbox.closed:
            self._send_close(connection.close_code)

    def _send_close(self, code: int, reason: str = "") -> None:
        assert self.peer is not None
        self.peer.close(code, reason)
        self._write_protocol()
        self.transport.close()

    def _pause_reading(self, paused: bool) -> None:
        if self.transport.is_closing():
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- keep-alive ---------------------------------------------------------------------
    def keepalive(self) -> None:
        if self._heard:
            self._heard = False
            self._pinged = False
        elif not self._pinged:
            self._pinged = True
            if self.peer is not None and self.peer.open and not self.transport.is_closing():
                self.peer.ping()
                self._write_protocol()
        else:
            log.info("closing a WebSocket that answered no ping")
            if self.connection is not None:
                self.connection.close()
            self._send_close(CLOSE_GOING_AWAY, "keep-alive timeout")


class _Pipe(asyncio.Protocol):
    """The owning worker's side of a spliced socket: its bytes go back to the client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        if not self.client.is_closing():
            self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()
