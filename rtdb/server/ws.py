"""The WebSocket transport at ``/.ws`` (Firebase wire protocol v5).

A :class:`Connection` is fed complete text messages by a transport and answers
through its bounded :class:`Outbox`: frames go through
:class:`rtdb.protocol.session.ServerSession` (framing, decoding, listen table,
onDisconnect queue); requests become engine calls; pushes arrive from
:class:`rtdb.realtime.hub.Hub` into the same outbox. One transport feeds it for
``/.ws``: :mod:`rtdb.server.wsprotocol`, the native protocol ``rtdb serve`` gives
uvicorn (long-polling sessions, :mod:`rtdb.server.lp`, feed it too).

Requests of a connection take effect in order through its
:class:`~rtdb.server.lane.Lane` (consecutive writes go to the store together and
are acknowledged in order); what each request does is
:class:`~rtdb.server.wsrequests.Requests`, a base class of :class:`Connection`. A
write's pushes are queued before its ack, a listen's data before its ``ok``. This
module keeps the endpoint, the connection's lifecycle and its credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from litestar import get
from msgspec import UNSET

from rtdb.core.auth import ANONYMOUS, Caller, unverified_claims
from rtdb.core.errors import RtdbError, Unauthenticated
from rtdb.engine.cluster import Cluster, cluster_for
from rtdb.engine.engine import Engine
from rtdb.engine.ondisconnect import Accept, DisconnectRegistry, MemoryRegistry
from rtdb.protocol import messages as m
from rtdb.protocol.codec import data_push_frames, push_frames
from rtdb.protocol.errors import ProtocolError
from rtdb.protocol.session import Reply, ServerSession
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.realtime.wire import WireRenderer
from rtdb.server.auth import Authenticator
from rtdb.server.lane import Lane
from rtdb.server.monitor import Monitor
from rtdb.server.settings import Settings
from rtdb.server.wsrequests import Requests

log = logging.getLogger("rtdb.ws")

ENDPOINT_PATH = "/.ws"
CLOSE_OVERFLOW = 4008  # the client reconnects and resyncs
CLOSE_SERVICE_RESTART = 1012
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INTERNAL_ERROR = 1011


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

    @staticmethod
    def route() -> Any:
        """The litestar handler for a plain HTTP request to ``/.ws``: 426. (Upgrades to
        ``/.ws`` never reach the ASGI app: :mod:`rtdb.server.wsprotocol` answers them.)"""

        @get(ENDPOINT_PATH, media_type="application/json", status_code=426, sync_to_thread=False)
        def websocket_only() -> dict[str, str]:
            return {"error": "WebSocket endpoint: connect with ws://"}

        return websocket_only

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


def identity(caller: Caller) -> tuple[Any, ...]:
    """Who a caller is, as far as taking over a session goes: admin or not, and the user
    (uid and sign-in provider; a renewed token of the same user is the same identity)."""
    auth = caller.auth
    if auth is None:
        return (caller.admin, None)
    if "uid" in auth:
        return (caller.admin, auth.get("uid"), auth.get("provider"))
    return (caller.admin, json.dumps(auth, sort_keys=True, default=str))


class Connection(Requests):
    """One client's protocol state; transport-agnostic. The transport calls :meth:`feed`
    with each received text message, sends what the outbox holds, calls :meth:`close`
    when the socket is gone or closing and then awaits :meth:`finish` (onDisconnect)."""

    def __init__(self, endpoint: WsEndpoint, session: ServerSession) -> None:
        self.endpoint = endpoint
        self.engine = endpoint.engine
        self.registry = endpoint.registry  # set for good before connections are served
        self.hub = endpoint.hub
        self.session = session
        self.ns = session.namespace
        self.outbox = Outbox(on_overflow=self._overflowed, metrics=self.hub.metrics)
        self.close_code = 1000
        self.on_pause: Callable[[bool], None] | None = None
        """Set by the transport: called with ``True`` to stop reading, ``False`` to resume."""
        self._expiry: asyncio.TimerHandle | None = None
        self._rechecks: set[asyncio.Task[None]] = set()
        self.lane = Lane(self)
        self._closed = False
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
                self.lane.gate(self._take_over(old, lambda registered: True, announce=False))
        elif self.registry.durable:
            self.lane.gate(self._take_over(old, lambda registered: identity(registered) == identity(caller),
                                       announce=True))
        else:
            self.replaces = None  # it has ended meanwhile (its onDisconnect writes ran)

    async def _take_over(self, old: str, accept: Accept, *, announce: bool) -> None:
        try:
            ops = await self.registry.takeover(old, accept)
        except RtdbError as exc:
            log.warning("taking over session %s failed: %s", old, exc.message)
            return
        if ops is None:
            return  # registered by someone else (or by this client before it signed in: after auth)
        if self.replaces == old:
            self.replaces = None
        await self.engine.run_disconnect(ops)
        cluster = self.endpoint.cluster
        if announce and cluster is not None:
            await cluster.announce_takeover(old, self.session.caller)

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
        self.lane.drop_unstarted()

    async def finish(self) -> None:
        """After :meth:`close`: let started requests end, drop the listens, run onDisconnect."""
        self.close()
        self.endpoint.connections.pop(self.session.session_id, None)
        await self.lane.drain()
        for entry in self.session.clear_listens():
            if isinstance(entry.handle, Listener):
                self.hub.unlisten(entry.handle)
        registry = self.registry
        session_id = self.session.session_id
        try:
            if self._discard:
                await registry.discard(session_id)
            else:
                await self.engine.run_disconnect(await registry.take(session_id))
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
        self.lane.submit(incoming)

    def pause_reading(self, paused: bool) -> None:
        """The lane is full (``True``) or half empty again (``False``): tell the transport."""
        if self.on_pause is not None:
            self.on_pause(paused)

    # -- credentials ----------------------------------------------------------------
    def _unauthenticate(self, request: m.Unauth) -> None:
        changed = self.session.caller != ANONYMOUS
        self.session.caller = ANONYMOUS
        self.take_over()
        self._schedule_expiry(None)
        self._respond(request.r, "ok", "unauthenticated")
        if changed:
            self._recheck_soon()

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
        claims = caller.auth if caller.auth is not None else unverified_claims(body.cred)
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



def reset_frame(host: str) -> str:
    """The control message that sends a client to ``host`` to connect again (``r``)."""
    return json.dumps({"t": "c", "d": {"t": "r", "d": host}}, ensure_ascii=True, separators=(",", ":"))
