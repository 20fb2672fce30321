"""The WebSocket transport at ``/.ws`` (Firebase wire protocol v5).

A raw ASGI endpoint: frames go through :class:`rtdb.protocol.session.ServerSession`
(framing, decoding, listen table, onDisconnect queue); requests become engine
calls; pushes arrive from :class:`rtdb.realtime.hub.Hub` into the connection's
bounded :class:`Outbox`, which one writer task drains. Requests of a connection
run strictly in order; a write's pushes are queued before its ack, a listen's
data before its ``ok``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from litestar.handlers import asgi
from msgspec import UNSET

from rtdb.core import path as paths
from rtdb.core.auth import ANONYMOUS, Caller
from rtdb.core.errors import InvalidData, PreconditionFailed, RtdbError, Unauthenticated
from rtdb.core.hash import node_hash
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, normalize
from rtdb.engine.engine import Engine, parse_updates
from rtdb.protocol import messages as m
from rtdb.protocol.codec import data_push_frames, push_frames, response_frames
from rtdb.protocol.errors import ProtocolError
from rtdb.protocol.query import query_id, to_spec
from rtdb.protocol.session import DisconnectOp, ListenEntry, Reply, ServerSession, tag_of
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.server.auth import Authenticator
from rtdb.server.settings import Settings

log = logging.getLogger("rtdb.ws")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STALE_TEXT = "Transaction hash does not match"
CLOSE_OVERFLOW = 4008  # the client reconnects and resyncs
CLOSE_PROTOCOL_ERROR = 1002


class WsEndpoint:
    """Owns the hub and the live connections of one app."""

    def __init__(self, engine: Engine, settings: Settings, authenticator: Authenticator) -> None:
        self.engine = engine
        self.settings = settings
        self.auth = authenticator
        self.hub = Hub(engine.feed)
        self.connections: dict[str, Connection] = {}
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)

    def route(self) -> Any:
        """The litestar route handler to register."""

        @asgi("/.ws", copy_scope=False)
        async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await self(scope, receive, send)

        return websocket_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            body = b'{"error": "WebSocket endpoint: connect with ws://"}\n'
            await send({"type": "http.response.start", "status": 426, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        session = ServerSession(
            session_id=f"{self._prefix}-{next(self._ids)}",
            host=host,
            namespace=self.settings.namespace_of(params, host),
        )
        await send({"type": "websocket.accept"})
        previous = self.connections.get(params.get("ls", ""))
        if previous is not None:
            previous.abort()  # the client came back: its old session is gone
        connection = Connection(self, session, receive, send)
        self.connections[session.session_id] = connection
        try:
            await connection.run()
        finally:
            self.connections.pop(session.session_id, None)

    async def recheck(self, ns: str | None) -> None:
        """Rules changed (in ``ns``, or everywhere): revoke listens whose callers lost read access."""
        for connection in list(self.connections.values()):
            if ns is None or connection.ns == ns:
                await connection.recheck()


class Connection:
    def __init__(self, endpoint: WsEndpoint, session: ServerSession, receive: Receive, send: Send) -> None:
        self.endpoint = endpoint
        self.engine = endpoint.engine
        self.hub = endpoint.hub
        self.session = session
        self.ns = session.namespace
        self._receive = receive
        self._send = send
        self.outbox = Outbox(on_overflow=self._overflowed, metrics=self.hub.metrics)
        self._close_code = 1000
        self._expiry: asyncio.TimerHandle | None = None
        self._rechecks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        self.outbox.send(self.session.hello(self.engine.clock()))
        writer = asyncio.get_running_loop().create_task(self._write_loop())
        disconnected = True
        try:
            disconnected = await self._read_loop()
        finally:
            self._schedule_expiry(None)
            self.outbox.close()
            for entry in self.session.clear_listens():
                if isinstance(entry.handle, Listener):
                    self.hub.unlisten(entry.handle)
            if disconnected:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await self._run_on_disconnect()

    def abort(self, code: int = 1000) -> None:
        """Close this connection from the server side (e.g. its client reconnected)."""
        self._close_code = code
        self.outbox.close()

    def _overflowed(self) -> None:
        self._close_code = CLOSE_OVERFLOW
        log.warning("send queue overflow on %s: disconnecting", self.session.session_id)

    async def _read_loop(self) -> bool:
        """Serve requests until the client disconnects (``True``) or the server closes (``False``)."""
        session = self.session
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return True
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", errors="replace")
            try:
                incoming = session.receive(text)
            except ProtocolError as exc:
                log.info("closing %s: %s", session.session_id, exc)
                self.abort(CLOSE_PROTOCOL_ERROR)
                return False
            if incoming is None:
                continue
            if isinstance(incoming, Reply):
                self.outbox.send(incoming.frames)
                continue
            await self._handle(incoming)
            if self.outbox.closed:
                return False

    async def _write_loop(self) -> None:
        """Send queued frames in order; once the outbox is closed, close the socket."""
        send = self._send
        try:
            while batch := await self.outbox.drain():
                for frames in batch:
                    for frame in frames:
                        await send({"type": "websocket.send", "text": frame})
            await send({"type": "websocket.close", "code": self._close_code})
        except (OSError, RuntimeError):
            pass  # the client went away; the reader sees the disconnect
        except Exception:
            log.exception("websocket send failed")

    # -- requests -------------------------------------------------------------------
    def _respond(self, r: int, status: str = "ok", data: Any = "") -> None:
        self.outbox.send(response_frames(r, status, data))

    async def _handle(self, request: m.ClientRequest) -> None:
        try:
            await self._dispatch(request)
        except RtdbError as exc:
            self._respond(request.r, exc.code, exc.message)
        except Exception:
            log.exception("request %s failed", type(request).__name__)
            self._respond(request.r, "internal_error", "Internal server error")

    async def _dispatch(self, request: m.ClientRequest) -> None:
        if isinstance(request, m.Listen):
            await self._listen(request)
        elif isinstance(request, m.Put):
            await self._put(request)
        elif isinstance(request, m.Merge):
            await self._merge(request)
        elif isinstance(request, m.Get):
            await self._get(request)
        elif isinstance(request, m.Unlisten):
            self._unlisten(request)
        elif isinstance(request, (m.Auth, m.GAuth)):
            self._authenticate(request)
        elif isinstance(request, m.Unauth):
            changed = self.session.caller != ANONYMOUS
            self.session.caller = ANONYMOUS
            self._schedule_expiry(None)
            self._respond(request.r, "ok", "unauthenticated")
            if changed:
                self._recheck_soon()
        elif isinstance(request, m.OnDisconnectPut):
            self._queue_put(request)
        elif isinstance(request, m.OnDisconnectMerge):
            self._queue_merge(request)
        elif isinstance(request, m.OnDisconnectCancel):
            self.session.cancel_on_disconnect(paths.parse(request.b.p))
            self._respond(request.r)
        elif isinstance(request, m.Stats):
            self.session.stats.update(request.b.c)
            self._respond(request.r)
        else:  # appcheck, unappeck: accepted, not enforced
            self._respond(request.r)

    def _authenticate(self, request: m.Auth | m.GAuth) -> None:
        body = request.b
        params: dict[str, str] = {}
        if body.noauth is True:
            params["auth_variable_override"] = "null"
        elif body.authvar is not UNSET:
            params["auth_variable_override"] = json.dumps(body.authvar)
        try:
            caller = self.endpoint.auth.caller(body.cred, params)
        except Unauthenticated as exc:
            self._respond(request.r, "invalid_token", exc.message)
            return
        changed = caller != self.session.caller
        self.session.caller = caller
        self._schedule_expiry(caller.expires_at_ms)
        if changed:
            self._recheck_soon()
        claims = caller.auth if caller.auth is not None else _unverified_claims(body.cred)
        expires = claims.get("exp") if isinstance(claims, dict) else None
        if caller.expires_at_ms is not None:
            expires = caller.expires_at_ms // 1000
        self._respond(request.r, "ok", {"auth": claims, "expires": expires})

    def _schedule_expiry(self, expires_at_ms: int | None) -> None:
        """Arm (or disarm) the ``ac`` push for when the current token expires."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires_at_ms is not None:
            delay = max(0.0, (expires_at_ms - self.engine.clock()) / 1000)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self.session.caller = ANONYMOUS
        body = m.StatusBody("expired_token", "Auth token is expired.")
        self.outbox.send(push_frames(m.AuthRevokedPush(body)))
        self._recheck_soon()

    def _recheck_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.recheck())
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    async def recheck(self) -> None:
        """Rules or this connection's auth changed: revoke every listen it can no longer read."""
        caller = self.session.caller
        for entry in list(self.session.listens()):
            try:
                allowed = await self.engine.check_read(self.ns, entry.path, caller=caller, query=entry.spec)
            except Exception:
                log.exception("re-checking a listen failed")
                allowed = False
            if not allowed:
                if isinstance(entry.handle, Listener):
                    self.hub.unlisten(entry.handle)
                self._revoke(entry)

    async def _listen(self, request: m.Listen) -> None:
        body = request.b
        path = paths.parse(body.p)
        spec = _query_spec(body.q)
        qid = query_id(body.q)
        tag = tag_of(body.t)
        old = self.session.remove_listen(path, qid)
        if old is not None and isinstance(old.handle, Listener):
            self.hub.unlisten(old.handle)
        caller = self.session.caller
        entry = ListenEntry(path, body.q, qid, spec, tag)
        listener = Listener(
            self.ns,
            path,
            self.outbox,
            spec=spec,
            tag=tag,
            refresh=self._refresher(path, spec, caller),
            on_cancel=lambda exc: self._revoke(entry),
        )
        entry.handle = listener
        self.hub.listen(listener)
        try:
            result = await self.engine.read(self.ns, path, caller=caller, query=spec)
        except BaseException:
            self.hub.unlisten(listener)
            raise
        node = result.node
        if body.h != node_hash(node):
            self.outbox.send(data_push_frames(path, node, tag))
        self.session.add_listen(entry)
        self.hub.activate(listener, node, result.seq)
        warnings = {} if self.engine.is_indexed(self.ns, path, spec) else {"w": ["no_index"]}
        self._respond(request.r, "ok", warnings)

    def _refresher(self, path: paths.Path, spec: QuerySpec | None, caller: Caller) -> Callable[[], Awaitable[tuple[Node, int]]]:
        async def refresh() -> tuple[Node, int]:
            # the connection's current caller: auth may have changed since the listen
            result = await self.engine.read(self.ns, path, caller=self.session.caller, query=spec)
            return result.node, result.seq

        return refresh

    def _revoke(self, entry: ListenEntry) -> None:
        """The listen became unreadable: tell the client (``c`` push) and forget it."""
        if self.session.get_listen(entry.path, entry.query_id) is not entry:
            return
        self.session.remove_listen(entry.path, entry.query_id)
        queries = [entry.query] if isinstance(entry.query, m.WireQuery) else UNSET
        self.outbox.send(push_frames(m.RevokePush(m.RevokeBody("/".join(entry.path), queries))))

    def _unlisten(self, request: m.Unlisten) -> None:
        entry = self.session.remove_listen(paths.parse(request.b.p), query_id(request.b.q))
        if entry is not None and isinstance(entry.handle, Listener):
            self.hub.unlisten(entry.handle)
        self._respond(request.r)

    async def _put(self, request: m.Put) -> None:
        body = request.b
        path = paths.parse(body.p, allow_priority=True)
        if_hash = body.h if body.h is not UNSET else None
        try:
            await self.engine.set(self.ns, path, body.d, caller=self.session.caller, if_hash=if_hash)
        except PreconditionFailed:
            self._respond(request.r, "datastale", STALE_TEXT)
            return
        await self.hub.settle(self.ns)
        self._respond(request.r)

    async def _merge(self, request: m.Merge) -> None:
        path = paths.parse(request.b.p)
        if request.b.d:
            await self.engine.update(self.ns, path, request.b.d, caller=self.session.caller)
            await self.hub.settle(self.ns)
        self._respond(request.r)

    async def _get(self, request: m.Get) -> None:
        path = paths.parse(request.b.p)
        spec = _query_spec(request.b.q)
        result = await self.engine.read(self.ns, path, caller=self.session.caller, query=spec)
        self._respond(request.r, "ok", result.node)

    # -- onDisconnect ---------------------------------------------------------------
    def _queue_put(self, request: m.OnDisconnectPut) -> None:
        path = paths.parse(request.b.p, allow_priority=True)
        if not (path and path[-1] == paths.PRIORITY_KEY):
            normalize(request.b.d, path)  # reject bad data now, not at disconnect time
        self.session.queue_on_disconnect(DisconnectOp("set", path, request.b.d, self.session.caller))
        self._respond(request.r)

    def _queue_merge(self, request: m.OnDisconnectMerge) -> None:
        path = paths.parse(request.b.p)
        if not isinstance(request.b.d, dict):
            raise InvalidData("onDisconnect().update() needs an object")
        parse_updates(path, request.b.d)
        if request.b.d:
            self.session.queue_on_disconnect(DisconnectOp("update", path, request.b.d, self.session.caller))
        self._respond(request.r)

    async def _run_on_disconnect(self) -> None:
        for op in self.session.take_on_disconnect():
            caller = op.caller if isinstance(op.caller, Caller) else self.session.caller
            try:
                if op.kind == "set":
                    await self.engine.set(self.ns, op.path, op.data, caller=caller)
                else:
                    await self.engine.update(self.ns, op.path, op.data, caller=caller)
            except RtdbError as exc:
                log.info("onDisconnect %s at %s failed: %s", op.kind, paths.to_str(op.path), exc.code)
            except Exception:
                log.exception("onDisconnect %s at %s failed", op.kind, paths.to_str(op.path))


def _query_spec(query: m.WireQuery | Any) -> QuerySpec | None:
    spec = to_spec(query)
    if spec is None or spec.is_default and spec.order_by == "priority":
        return None
    return spec


def _unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, for the informational ``auth`` reply only (never for access)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None

