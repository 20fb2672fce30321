"""The WebSocket transport at ``/.ws`` (Firebase wire protocol v5).

A :class:`Connection` is fed complete text messages by a transport and answers
through its bounded :class:`Outbox`: frames go through
:class:`rtdb.protocol.session.ServerSession` (framing, decoding, listen table,
onDisconnect queue); requests become engine calls; pushes arrive from
:class:`rtdb.realtime.hub.Hub` into the same outbox. Two transports feed it:
this module's raw ASGI endpoint (any ASGI server, in-process tests) and
:mod:`rtdb.server.wsprotocol`, the lean native protocol ``rtdb serve`` gives uvicorn.

Requests of a connection take effect in order: consecutive writes (``p``/``m``)
go to the store together (so one group commit takes a client's whole pipeline)
and are acknowledged in order; any other request waits until everything before
it is answered, and everything after it waits for it. A write's pushes are
queued before its ack, a listen's data before its ``ok``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from litestar.handlers import asgi
from msgspec import UNSET

from rtdb.core import path as paths
from rtdb.core.auth import ANONYMOUS, Caller
from rtdb.core.errors import InvalidData, PreconditionFailed, RtdbError, Unauthenticated
from rtdb.core.hash import node_hash
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node
from rtdb.engine.cluster import Cluster, cluster_for
from rtdb.engine.engine import Engine
from rtdb.engine.ondisconnect import Accept, DisconnectOp, DisconnectRegistry, MemoryRegistry, run_ops
from rtdb.protocol import messages as m
from rtdb.protocol.codec import Frames, data_push_frames, push_frames, response_frames
from rtdb.protocol.errors import ProtocolError
from rtdb.protocol.query import query_id, to_spec
from rtdb.protocol.session import ListenEntry, Reply, ServerSession, tag_of
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.realtime.wire import WireRenderer
from rtdb.server.auth import Authenticator
from rtdb.server.monitor import Monitor
from rtdb.server.settings import Settings

log = logging.getLogger("rtdb.ws")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STALE_TEXT = "Transaction hash does not match"
CLOSE_OVERFLOW = 4008  # the client reconnects and resyncs
CLOSE_SERVICE_RESTART = 1012
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INTERNAL_ERROR = 1011
MAX_IN_FLIGHT = 1024
"""Requests of one connection queued or running before it stops reading (resumes at half)."""

_WRITES = (m.Put, m.Merge)
_ASYNC = (m.Listen, m.Get, m.Put, m.Merge, m.OnDisconnectPut, m.OnDisconnectMerge, m.OnDisconnectCancel)
_GATE = object()
"""The request of a lane entry that holds later requests back (:meth:`Connection._gate`)."""


class WsEndpoint:
    """Owns the hub and the live connections of one app."""

    def __init__(self, engine: Engine, settings: Settings, authenticator: Authenticator) -> None:
        self.engine = engine
        self.settings = settings
        self.auth = authenticator
        self.hub = Hub(engine.feed, WireRenderer())
        self.monitor = Monitor()
        """Counts the requests: the app sets the server's."""
        self.connections: dict[str, Connection] = {}
        self.lp: Any = None
        """The long-polling endpoint (:class:`rtdb.server.lp.LpEndpoint`), which upgrades to here."""
        self.worker: int | None = None
        """This process's worker number under ``--workers``; it ends every session id."""
        self.registry: DisconnectRegistry = MemoryRegistry()
        """Where the connections' onDisconnect operations live: in memory, or (once :meth:`start`
        ran with a PostgreSQL backend) in PostgreSQL, where they survive this process."""
        self.cluster: Cluster | None = cluster_for(
            engine, name=getattr(settings, "node_id", None), address=f"{settings.host}:{settings.port}",
            lease_s=settings.node_lease_s)
        """This process as a node of the cluster sharing its PostgreSQL database (else ``None``)."""

    async def start(self) -> None:
        """With a PostgreSQL backend: join the cluster (lease, sweeper), keep onDisconnect
        operations in PostgreSQL, and refuse writes while this node is fenced."""
        cluster = self.cluster
        if cluster is None:
            return
        cluster.on_fenced = self.fence
        cluster.on_takeover = self._taken_over
        await cluster.start(self.engine)
        self.registry = cluster.registry
        self.engine.write_guard = cluster.check_writable

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop()

    def fence(self) -> None:
        """This node lost its lease (another node may be running its sessions' onDisconnect
        operations): close every connection with 1012; their operations are left to the sweeper."""
        for connection in list(self.connections.values()):
            connection.abort(CLOSE_SERVICE_RESTART)

    def _taken_over(self, session_id: str, caller: Caller) -> None:
        """Another node took session ``session_id`` over for ``caller``: close it here."""
        connection = self.connections.get(session_id)
        if connection is not None and identity(connection.session.caller) == identity(caller):
            connection.abort()

    def new_id(self, nbytes: int = 16) -> str:
        """A random session id (``nbytes`` random bytes, hex) that names this worker."""
        token = secrets.token_hex(nbytes)
        return token if self.worker is None else f"{token}w{self.worker}"

    @staticmethod
    def owner_of(session_id: str) -> int | None:
        """The worker that made ``session_id`` (``None``: no worker named)."""
        _, mark, worker = session_id.rpartition("w")
        return int(worker) if mark and worker.isdigit() and len(worker) < 6 else None

    def open(self, params: dict[str, str], host: str) -> Connection:
        """A new connection for an accepted WebSocket or long-polling session (query ``params``,
        ``Host`` header); its handshake message is queued."""
        session = ServerSession(
            session_id=self.new_id(16),  # 128 random bits: a session id is not guessable
            host=host,
            namespace=self.settings.namespace_of(params, host),
        )
        connection = Connection(self, session)
        connection.replaces = params.get("ls") or None
        connection.take_over()
        self.connections[session.session_id] = connection
        connection.outbox.send(session.hello(self.engine.clock()))
        if self.cluster is not None and self.cluster.node_id is not None and self.cluster.current() is None:
            connection.abort(CLOSE_SERVICE_RESTART)  # fenced: rejoining the cluster
        return connection

    def route(self) -> Any:
        """The litestar route handler to register."""

        @asgi("/.ws", copy_scope=False)
        async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await self(scope, receive, send)

        return websocket_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI endpoint: one reader loop and one writer task per connection."""
        if scope["type"] != "websocket":
            body = b'{"error": "WebSocket endpoint: connect with ws://"}\n'
            json_type = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 426, "headers": json_type})
            await send({"type": "http.response.body", "body": body})
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        await send({"type": "websocket.accept"})
        if "s" in params:  # an upgrade from long-polling: only the native protocol carries them out
            await send({"type": "websocket.send", "text": reset_frame(headers.get("host", ""))})
            await send({"type": "websocket.close", "code": 1000})
            return
        connection = self.open(params, headers.get("host", ""))
        reading = asyncio.Event()
        reading.set()
        connection.on_pause = lambda paused: reading.clear() if paused else reading.set()
        writer = asyncio.get_running_loop().create_task(_asgi_writer(connection, send))
        disconnected = True
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
                connection.feed(text)
                if connection.outbox.closed:
                    disconnected = False
                    break
                if not reading.is_set():
                    await reading.wait()
        finally:
            connection.close()
            if disconnected:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await connection.finish()

    def restart(self, ns: str) -> None:
        """Close every connection to ``ns`` with 1012 (service restart): clients reconnect and
        listen again, getting current data (after this process missed commits of ``ns``)."""
        for connection in list(self.connections.values()):
            if connection.ns == ns:
                connection.abort(CLOSE_SERVICE_RESTART)

    def drop(self, ns: str) -> None:
        """``ns`` was dropped: every listen of its connections gets its data as ``null``, their
        onDisconnect writes are discarded (running them would recreate the namespace they were
        meant for), and they are closed with 1012, so the clients reconnect and listen again
        (with the hash of their ``null``: nothing more is sent until the data changes)."""
        for connection in list(self.connections.values()):
            if connection.ns == ns:
                connection.dropped()

    async def recheck(self, ns: str | None) -> None:
        """Rules changed (in ``ns``, or everywhere): revoke listens whose callers lost read access."""
        for connection in list(self.connections.values()):
            if ns is None or connection.ns == ns:
                await connection.recheck()


async def _asgi_writer(connection: Connection, send: Send) -> None:
    """Send queued frames in order; once the outbox is closed, close the socket."""
    try:
        while batch := await connection.outbox.drain():
            for frames in batch:
                for frame in frames:
                    await send({"type": "websocket.send", "text": frame})
        await send({"type": "websocket.close", "code": connection.close_code})
    except (OSError, RuntimeError):
        pass  # the client went away; the reader sees the disconnect
    except Exception:
        log.exception("websocket send failed")


class _Pending:
    """A request in a connection's lane. ``started`` once its coroutine runs, ``done`` once
    it returned (``result``) or raised (``error``); ``blocks`` while it keeps later writes
    from starting (any request but a started write).

    A write's coroutine is stepped here, eagerly, rather than by a Task: its first step
    (validation up to handing the write to the store) runs as the request arrives, and it
    resumes straight from the store future's callback, which saves most of what a Task
    costs per write. Listens and gets run as Tasks."""

    __slots__ = ("blocks", "coro", "done", "error", "request", "result", "started")

    def __init__(self, request: m.ClientRequest) -> None:
        self.request = request
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.started = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.blocks = True


def identity(caller: Caller) -> tuple[Any, ...]:
    """Who a caller is, as far as taking over a session goes: admin or not, and the user
    (uid and sign-in provider; a renewed token of the same user is the same identity)."""
    auth = caller.auth
    if auth is None:
        return (caller.admin, None)
    if "uid" in auth:
        return (caller.admin, auth.get("uid"), auth.get("provider"))
    return (caller.admin, json.dumps(auth, sort_keys=True, default=str))


class Connection:
    """One client's protocol state; transport-agnostic. The transport calls :meth:`feed`
    with each received text message, sends what the outbox holds, calls :meth:`close`
    when the socket is gone or closing and then awaits :meth:`finish` (onDisconnect)."""

    def __init__(self, endpoint: WsEndpoint, session: ServerSession) -> None:
        self.endpoint = endpoint
        self.engine = endpoint.engine
        self.hub = endpoint.hub
        self.session = session
        self.ns = session.namespace
        self.outbox = Outbox(on_overflow=self._overflowed, metrics=self.hub.metrics)
        self.close_code = 1000
        self.on_pause: Callable[[bool], None] | None = None
        """Set by the transport: called with ``True`` to stop reading, ``False`` to resume."""
        self._expiry: asyncio.TimerHandle | None = None
        self._rechecks: set[asyncio.Task[None]] = set()
        self._lane: deque[_Pending] | None = None  # requests not yet answered, in arrival order
        self._blocked = 0  # entries of the lane that block
        self._paused = False
        self._closed = False
        self._drained: asyncio.Future[None] | None = None  # finish() waits for the lane to empty
        self.replaces: str | None = None
        """The session this client says it had (``ls=``): ended once this one has its credentials."""
        self._discard = False  # the namespace was dropped: onDisconnect operations are forgotten

    # -- lifecycle ------------------------------------------------------------------
    def abort(self, code: int = 1000) -> None:
        """Close this connection from the server side (e.g. its client reconnected)."""
        self.close_code = code
        self.outbox.close()

    def dropped(self) -> None:
        """The namespace was dropped (:meth:`WsEndpoint.drop`)."""
        self._discard = True
        for entry in self.session.listens():
            self.outbox.send(data_push_frames(entry.path, None, entry.tag))
        self.abort(CLOSE_SERVICE_RESTART)

    def take_over(self) -> None:
        """The client came back (``ls=``): end its old session and run its onDisconnect writes
        before any later request of this one (a late "offline" never lands after a new
        "online"), but only once this connection holds the same credentials as that one had;
        naming someone else's session id ends nothing. With a durable registry the old session
        may have lived on another node (maybe dead): its operations are claimed from there, and
        its node is told to close it."""
        old = self.replaces
        if old is None:
            return
        caller = self.session.caller
        previous = self.endpoint.connections.get(old)
        if previous is not None:
            if identity(previous.session.caller) == identity(caller):
                self.replaces = None
                previous.abort()
                self._gate(self._take_over(old, lambda registered: True, announce=False))
        elif self.endpoint.registry.durable:
            self._gate(self._take_over(old, lambda registered: identity(registered) == identity(caller),
                                       announce=True))
        else:
            self.replaces = None  # it has ended meanwhile (its onDisconnect writes ran)

    async def _take_over(self, old: str, accept: Accept, *, announce: bool) -> None:
        try:
            ops = await self.endpoint.registry.takeover(old, accept)
        except RtdbError as exc:
            log.warning("taking over session %s failed: %s", old, exc.message)
            return
        if ops is None:
            return  # registered by someone else (or by this client before it signed in: after auth)
        if self.replaces == old:
            self.replaces = None
        await run_ops(self.engine, ops)
        cluster = self.endpoint.cluster
        if announce and cluster is not None:
            await cluster.announce_takeover(old, self.session.caller)

    def _gate(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` now; requests not yet started wait until it is done."""
        pending = _Pending(_GATE)
        pending.started = True
        if self._lane is None:
            self._lane = deque()
        self._lane.appendleft(pending)  # only requests not yet started are in the lane now
        self._blocked += 1
        task = asyncio.get_running_loop().create_task(work)
        self._rechecks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._rechecks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("taking over a session failed", exc_info=task.exception())
            self._finished(pending, None, None)

        task.add_done_callback(done)

    def _overflowed(self) -> None:
        self.close_code = CLOSE_OVERFLOW
        log.warning("send queue overflow on %s: disconnecting", self.session.session_id)

    def close(self) -> None:
        """The socket is gone or closing: take no more requests (those started still finish)."""
        if self._closed:
            return
        self._closed = True
        self._schedule_expiry(None)
        self.outbox.close()
        lane = self._lane
        if lane:
            self._lane = deque(p for p in lane if p.started)

    async def finish(self) -> None:
        """After :meth:`close`: let started requests end, drop the listens, run onDisconnect."""
        self.close()
        self.endpoint.connections.pop(self.session.session_id, None)
        if self._lane:
            self._drained = asyncio.get_running_loop().create_future()
            self._advance()
            await self._drained
        for entry in self.session.clear_listens():
            if isinstance(entry.handle, Listener):
                self.hub.unlisten(entry.handle)
        registry = self.endpoint.registry
        session_id = self.session.session_id
        try:
            if self._discard:
                await registry.discard(session_id)
            else:
                await run_ops(self.engine, await registry.take(session_id))
        except RtdbError as exc:
            log.warning("onDisconnect of %s: %s", session_id, exc.message)

    def feed(self, text: str) -> None:
        """One complete text message from the client."""
        if self._closed:
            return
        try:
            incoming = self.session.receive(text)
        except ProtocolError as exc:
            log.info("closing %s: %s", self.session.session_id, exc)
            self.abort(CLOSE_PROTOCOL_ERROR)
            return
        except Exception:  # a bug, not the client's fault: still close with a close frame
            log.exception("closing %s: a message could not be read", self.session.session_id)
            self.abort(CLOSE_INTERNAL_ERROR)
            return
        if incoming is None:
            return
        if isinstance(incoming, Reply):
            self.outbox.send(incoming.frames)
            return
        self.endpoint.monitor.received("ws")
        self._submit(incoming)

    # -- the lane: order of requests ------------------------------------------------
    def _submit(self, request: m.ClientRequest) -> None:
        lane = self._lane
        if not lane:
            if not isinstance(request, _ASYNC):
                self._handle_now(request)
                return
            lane = self._lane = deque()
        pending = _Pending(request)
        lane.append(pending)
        if self._blocked == 0 and isinstance(request, _WRITES):
            self._start(pending)
        elif len(lane) == 1:
            self._start(pending)  # a listen or get with nothing before it
            self._blocked += 1
        else:
            self._blocked += 1
        if len(lane) >= MAX_IN_FLIGHT and not self._paused and self.on_pause is not None:
            self._paused = True
            self.on_pause(True)

    def _start(self, pending: _Pending) -> None:
        request = pending.request
        pending.started = True
        if isinstance(request, _WRITES):
            pending.blocks = False
            pending.coro = self._write(request)
            self._step(pending, eager=True)
        else:
            task = asyncio.get_running_loop().create_task(self._handle(request))
            task.add_done_callback(lambda _: self._finished(pending, None, None))

    def _step(self, pending: _Pending, _: object = None, *, eager: bool = False) -> None:
        coro = pending.coro
        assert coro is not None
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            self._finished(pending, stop.value, None, eager=eager)
            return
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the lane answers it
            self._finished(pending, None, exc, eager=eager)
            return
        if getattr(awaited, "_asyncio_future_blocking", None):  # awaiting an asyncio future, as in a Task
            awaited._asyncio_future_blocking = False
            awaited.add_done_callback(functools.partial(self._step, pending))
        else:  # a bare yield
            asyncio.get_running_loop().call_soon(self._step, pending)

    def _finished(self, pending: _Pending, result: Any, error: BaseException | None, *, eager: bool = False) -> None:
        pending.coro = None
        pending.done = True
        pending.result = result
        pending.error = error
        if eager:  # still inside _submit or _advance: answer from a fresh call
            asyncio.get_running_loop().call_soon(self._advance)
        else:
            self._advance()

    def _advance(self) -> None:
        """Answer finished requests at the head of the lane, in order; start what may start."""
        lane = self._lane
        while lane:
            head = lane[0]
            if not head.started:
                request = head.request
                if not isinstance(request, _ASYNC):
                    lane.popleft()
                    self._blocked -= 1
                    self._handle_now(request)
                    continue
                if isinstance(request, _WRITES):
                    for pending in list(lane):  # this write and the writes right behind it
                        if pending.started or not isinstance(pending.request, _WRITES):
                            break
                        self._blocked -= 1
                        self._start(pending)
                else:
                    self._start(head)
                break
            if not head.done:
                break
            lane.popleft()
            if head.blocks:
                self._blocked -= 1
            if isinstance(head.request, _WRITES):
                self._ack(head)
        if not lane:
            self._lane = None
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
        if self._paused and (not lane or len(lane) <= MAX_IN_FLIGHT // 2):
            self._paused = False
            if self.on_pause is not None:
                self.on_pause(False)

    def _ack(self, pending: _Pending) -> None:
        exc = pending.error
        request = pending.request
        if exc is None:
            self.outbox.send(pending.result)
        elif isinstance(exc, RtdbError):
            self._respond(request.r, exc.code, exc.message)
        elif not isinstance(exc, asyncio.CancelledError):
            log.error("request %s failed", type(request).__name__, exc_info=exc)
            self._respond(request.r, "internal_error", "Internal server error")

    # -- requests -------------------------------------------------------------------
    def _respond(self, r: int, status: str = "ok", data: Any = "") -> None:
        self.outbox.send(response_frames(r, status, data))

    async def _handle(self, request: m.ClientRequest) -> None:
        """A listen, a get or an onDisconnect registration (they respond themselves)."""
        try:
            if isinstance(request, m.Listen):
                await self._listen(request)
            elif isinstance(request, m.OnDisconnectPut):
                await self._queue_put(request)
            elif isinstance(request, m.OnDisconnectMerge):
                await self._queue_merge(request)
            elif isinstance(request, m.OnDisconnectCancel):
                await self.endpoint.registry.cancel(self.session.session_id, paths.parse(request.b.p))
                self._respond(request.r)
            else:
                assert isinstance(request, m.Get)
                await self._get(request)
        except RtdbError as exc:
            self._respond(request.r, exc.code, exc.message)
        except Exception:
            log.exception("request %s failed", type(request).__name__)
            self._respond(request.r, "internal_error", "Internal server error")

    async def _write(self, request: m.ClientRequest) -> Frames:
        """A put or a merge; returns its response (the lane sends responses in order)."""
        if isinstance(request, m.Put):
            return await self._put(request)
        assert isinstance(request, m.Merge)
        return await self._merge(request)

    def _handle_now(self, request: m.ClientRequest) -> None:
        """A request that needs no I/O."""
        try:
            self._dispatch(request)
        except RtdbError as exc:
            self._respond(request.r, exc.code, exc.message)
        except Exception:
            log.exception("request %s failed", type(request).__name__)
            self._respond(request.r, "internal_error", "Internal server error")

    def _dispatch(self, request: m.ClientRequest) -> None:
        if isinstance(request, m.Unlisten):
            self._unlisten(request)
        elif isinstance(request, (m.Auth, m.GAuth)):
            self._authenticate(request)
        elif isinstance(request, m.Unauth):
            changed = self.session.caller != ANONYMOUS
            self.session.caller = ANONYMOUS
            self.take_over()
            self._schedule_expiry(None)
            self._respond(request.r, "ok", "unauthenticated")
            if changed:
                self._recheck_soon()
        else:  # stats (acknowledged, not kept: a client could send them without end), appcheck, unappeck
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
        self.take_over()
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
        # a listen without a query or a hash only sends what it reads: stored JSON may pass
        # through undecoded (a query's window and a hash need the values themselves)
        raw = listener.spec is None and not body.h
        try:
            result = await self.engine.read(self.ns, path, caller=caller, query=spec, raw=raw)
        except BaseException:
            self.hub.unlisten(listener)
            raise
        node = result.node
        # the client's hash of what it holds: "" (nothing) matches only nothing, so a first
        # listen never pays for hashing what it is about to receive anyway
        if (node is not None) if not body.h else body.h != node_hash(node):
            self.outbox.send(data_push_frames(path, node, tag))
        self.session.add_listen(entry)
        self.hub.activate(listener, node, result.seq)
        warnings = {} if self.engine.is_indexed(self.ns, path, spec) else {"w": ["no_index"]}
        self._respond(request.r, "ok", warnings)

    def _refresher(
        self, path: paths.Path, spec: QuerySpec | None, caller: Caller
    ) -> Callable[[], Awaitable[tuple[Node, int]]]:
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

    async def _put(self, request: m.Put) -> Frames:
        body = request.b
        path = paths.parse(body.p, allow_priority=True)
        if_hash = body.h if body.h is not UNSET else None
        try:
            await self.engine.set(self.ns, path, body.d, caller=self.session.caller, if_hash=if_hash)
        except PreconditionFailed:
            return response_frames(request.r, "datastale", STALE_TEXT)
        if self.hub.refreshing(self.ns):
            await self.hub.settle(self.ns)
        return response_frames(request.r)

    async def _merge(self, request: m.Merge) -> Frames:
        path = paths.parse(request.b.p)
        if request.b.d:
            await self.engine.update(self.ns, path, request.b.d, caller=self.session.caller)
            if self.hub.refreshing(self.ns):
                await self.hub.settle(self.ns)
        return response_frames(request.r)

    async def _get(self, request: m.Get) -> None:
        path = paths.parse(request.b.p)
        spec = _query_spec(request.b.q)
        result = await self.engine.read(self.ns, path, caller=self.session.caller, query=spec, raw=True)
        self._respond(request.r, "ok", result.node)  # only encoded: stored JSON passes through

    # -- onDisconnect ---------------------------------------------------------------
    # Bad data and denied writes are refused when registered (and the rules are checked
    # again when the op runs: data and rules may have changed by then).
    async def _queue_put(self, request: m.OnDisconnectPut) -> None:
        path = paths.parse(request.b.p, allow_priority=True)
        caller = self.session.caller
        await self.engine.check_write(self.ns, "set", path, request.b.d, caller=caller)
        await self.endpoint.registry.register(self.session.session_id,
                                              DisconnectOp(self.ns, "set", path, request.b.d, caller))
        self._respond(request.r)

    async def _queue_merge(self, request: m.OnDisconnectMerge) -> None:
        path = paths.parse(request.b.p)
        if not isinstance(request.b.d, dict):
            raise InvalidData("onDisconnect().update() needs an object")
        caller = self.session.caller
        if request.b.d:
            await self.engine.check_write(self.ns, "update", path, request.b.d, caller=caller)
            await self.endpoint.registry.register(self.session.session_id,
                                                  DisconnectOp(self.ns, "update", path, request.b.d, caller))
        self._respond(request.r)


def reset_frame(host: str) -> str:
    """The control message that sends a client to ``host`` to connect again (``r``)."""
    return json.dumps({"t": "c", "d": {"t": "r", "d": host}}, ensure_ascii=True, separators=(",", ":"))


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

