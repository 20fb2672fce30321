"""The y-websocket endpoint: ``ws://HOST/.yjs/<path>?ns=<ns>&auth=<token>`` (issue 16).

A standard ``WebsocketProvider(serverUrl + "/.yjs", path, doc, {params: {ns, auth}})`` connects
here. Each binary message is one y-protocols message (:mod:`rtdb.protocol.yjs`); the document
itself lives in a :class:`rtdb.engine.yrooms.Room`.

Close codes (y-websocket 3 does not reconnect after 4400-4499): 4403 no read access (at
connect, or after the rules or the token changed) or an update the rules refuse; 4401 a bad
token; 4400 a malformed message, a bad path or an invalid update; 4008 a peer too slow to take
its messages (it reconnects); 1009 a message over :data:`MAX_MESSAGE_BYTES`; 1013 storage failed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any
from urllib.parse import parse_qsl

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.errors import PermissionDenied, RtdbError
from rtdb.engine.yrooms import CLOSE_DENIED, CLOSE_INVALID, Room, Rooms
from rtdb.protocol.errors import MessageTooBig, ProtocolError
from rtdb.protocol.yjs import decode_message
from rtdb.server.auth import Authenticator
from rtdb.server.settings import Settings

log = logging.getLogger("rtdb.yjs")

PREFIX = "/.yjs/"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""The largest y-protocols message accepted (a whole document sent as sync step 2 included)."""
OUTBOX_MESSAGES = 20_000
OUTBOX_BYTES = 64 * 1024 * 1024
CLOSE_BAD_TOKEN = 4401
CLOSE_SLOW = 4008


class SocketPeer:
    """One y-websocket client: messages to send, queued for the writer task."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.ready = asyncio.Event()
        self.closing: tuple[int, str] | None = None

    def send(self, data: bytes) -> None:
        if self.closing is not None:
            return
        self.queue.append(data)
        self.queued_bytes += len(data)
        if len(self.queue) > OUTBOX_MESSAGES or self.queued_bytes > OUTBOX_BYTES:
            self.close(CLOSE_SLOW, "too slow: messages overflowed")
        self.ready.set()

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.ready.set()


async def _write(peer: SocketPeer, send: Any) -> None:
    try:
        while True:
            await peer.ready.wait()
            peer.ready.clear()
            while peer.queue:
                data = peer.queue.popleft()
                peer.queued_bytes -= len(data)
                await send({"type": "websocket.send", "bytes": data})
            if peer.closing is not None:
                code, reason = peer.closing
                await send({"type": "websocket.close", "code": code, "reason": reason})
                return
    except (OSError, RuntimeError):
        pass  # the client went away; the reader sees the disconnect
    except Exception:
        log.exception("y-websocket send failed")


class YjsEndpoint:
    def __init__(self, engine: Any, settings: Settings, authenticator: Authenticator) -> None:
        self.engine = engine
        self.settings = settings
        self.auth = authenticator
        self.rooms = Rooms(engine)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            body = b'{"error": "Yjs endpoint: connect a y-websocket provider with ws://"}\n'
            await send({"type": "http.response.start", "status": 426,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        try:
            ns = self.settings.namespace_of(params, headers.get("host"))
            from rtdb.engine.engine import check_namespace

            check_namespace(ns)
            path = paths.parse(raw_path[len(PREFIX):] if raw_path.startswith(PREFIX) else "", decode=True)
            if not path:
                raise ProtocolError("a Yjs document needs a path: /.yjs/<path>")
        except (RtdbError, ProtocolError) as exc:
            await send({"type": "websocket.close", "code": CLOSE_INVALID, "reason": str(exc)[:120]})
            return
        try:
            caller = self.auth.caller(None, params)
        except RtdbError as exc:
            await send({"type": "websocket.close", "code": CLOSE_BAD_TOKEN, "reason": f"{exc.code}: {exc}"[:120]})
            return
        peer = SocketPeer(caller)
        writer = asyncio.get_running_loop().create_task(_write(peer, send))
        room: Room | None = None
        expiry: asyncio.TimerHandle | None = None
        try:
            try:
                room = await self.rooms.join(ns, path, peer)
            except PermissionDenied:
                peer.close(CLOSE_DENIED, "permission_denied: no read access")
                return
            except RtdbError as exc:
                peer.close(CLOSE_INVALID, f"{exc.code}: {exc}"[:120])
                return
            if caller.expires_at_ms is not None:
                delay = max(0.0, (caller.expires_at_ms - self.engine.clock()) / 1000)
                expiry = asyncio.get_running_loop().call_later(
                    delay, peer.close, CLOSE_DENIED, "unauthenticated: the token expired")
            await self._read(room, peer, receive)
        finally:
            if expiry is not None:
                expiry.cancel()
            if room is not None:
                room.leave(peer)
            if peer.closing is None:
                peer.close(1000, "")
            await asyncio.gather(writer, return_exceptions=True)

    async def _read(self, room: Room, peer: SocketPeer, receive: Any) -> None:
        while peer.closing is None:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                writer_done = peer.closing
                if writer_done is None:
                    peer.closing = (1000, "")  # nothing more to send to a gone client
                    peer.ready.set()
                return
            if message["type"] != "websocket.receive":
                continue
            data = message.get("bytes")
            if data is None:
                peer.close(CLOSE_INVALID, "y-protocols messages are binary")
                return
            try:
                decoded = decode_message(data, max_bytes=MAX_MESSAGE_BYTES)
            except MessageTooBig as exc:
                peer.close(1009, str(exc)[:120])
                return
            except ProtocolError as exc:
                peer.close(CLOSE_INVALID, f"invalid y-protocols message: {exc}"[:120])
                return
            room.receive(peer, decoded)

    async def recheck(self, ns: str | None) -> None:
        await self.rooms.recheck(ns)

    def drop(self, ns: str) -> None:
        self.rooms.drop(ns)


__all__ = ["MAX_MESSAGE_BYTES", "YjsEndpoint"]
