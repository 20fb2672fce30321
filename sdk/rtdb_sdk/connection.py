"""The persistent connection: one socket at a time, reconnecting with backoff.

It numbers and sends requests, routes responses to their callbacks and pushes
to its delegate (the repo), and restores state on every (re)connect in the JS
SDK's order (wire spec 8.6): stats (first time), auth, every active listen with
the hash of what the mirror holds, every unacknowledged write in order, then
onDisconnect requests and gets issued while offline. Unlike the JS SDK it sends
what follows the auth only once the server has accepted the token, so a refused
token never lets them run unauthenticated. A transaction's put lost
with a socket is failed with ``disconnect`` (the caller reruns it); other
requests are re-sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from msgspec import UNSET

from rtdb.core.auth import unverified_claims
from rtdb.core.path import Path
from rtdb.protocol import messages as m
from rtdb.protocol.client import KEEPALIVE_FRAME, ClientProtocol, ServerEvent, build_request, request_path
from rtdb.protocol.errors import ProtocolError
from rtdb.protocol.query import DEFAULT_QUERY_ID, from_spec, query_id
from rtdb_sdk.synctree import ListenRequest
from rtdb_sdk.transport import DatabaseUrl, Socket, Transport, websocket_transport

log = logging.getLogger("rtdb_sdk")

Kind = Literal["write", "txn", "od", "get", "listen", "misc"]
ResponseCallback = Callable[[str, Any], None]
_RESTORE_ORDER = {"write": 0, "txn": 0, "od": 1, "get": 2}
KEEPALIVE_S = 45.0
HEALTHY_AFTER_S = 30.0


class ConnectionDelegate(Protocol):
    def on_connected(self, server_time_ms: int) -> None: ...
    def on_disconnected(self) -> None: ...
    def on_data(self, path: Path, data: Any, merge: bool, tag: int | None) -> None: ...
    def on_listen_revoked(self, path: Path, query_id: str) -> None: ...
    def listen_hash(self, path: Path, query_id: str) -> str: ...


@dataclass(slots=True)
class _Request:
    seq: int
    kind: Kind
    action: str
    body: dict[str, Any]
    callback: ResponseCallback | None


def parse_push_path(raw: str) -> Path:
    return tuple(s for s in raw.split("/") if s)


def is_user_token(token: str) -> bool:
    """JWTs with an ``iat`` claim go with ``auth``; anything else (``owner``) with ``gauth``."""
    claims = unverified_claims(token)
    return claims is not None and "iat" in claims


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (seconds since the epoch), if it has one."""
    claims = unverified_claims(token)
    exp = claims.get("exp") if claims is not None else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


TokenProvider = Callable[[bool], Awaitable[str | None]]
"""``await provider(force_refresh)``: the credential to use now (``None``: none). Asked
before every connection (forcing a fresh one after the server refused or expired the
last), and again ahead of each token's ``exp`` so that the connection stays authenticated."""

REFRESH_AHEAD_S = 60.0


class Connection:
    def __init__(
        self,
        url: DatabaseUrl,
        delegate: ConnectionDelegate,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        transport: Transport | None = None,
        min_delay: float = 1.0,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.clock = clock  # wall-clock seconds, compared with a token's ``exp``
        self.delegate = delegate
        self.token = token
        self.token_provider = token_provider
        self._force_refresh = False
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._transport = transport or websocket_transport
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._proto = ClientProtocol()
        self._seq = 0
        self._outstanding: dict[int, _Request] = {}
        self._in_flight: dict[int, _Request] = {}
        self._listens: dict[tuple[Path, str], tuple[ListenRequest, ResponseCallback]] = {}
        self._outq: deque[str] = deque()
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        self._online.set()
        self._kick = asyncio.Event()
        self._connected = asyncio.Event()
        self._socket: Socket | None = None
        self._session: str | None = None
        self._host: str | None = None
        self._first = True
        self._closed = False
        self._killed = False
        self._auth_failures = 0
        self._awaiting_auth = False  # a new connection's auth is unanswered: hold the other requests
        self._task: asyncio.Task[None] | None = None
        self.connect_count = 0

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="rtdb_sdk.connection")

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def close(self) -> None:
        self._closed = True
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None
        if self._refreshing is not None:
            self._refreshing.cancel()
        self._online.set()
        self._kick.set()
        await self._close_socket()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def go_offline(self) -> None:
        self._online.clear()
        if self._socket is not None:
            self._socket_lost()  # offline from now on, whatever the socket still delivers
        await self._close_socket()

    def go_online(self) -> None:
        self._online.set()
        self._kick.set()

    async def _close_socket(self) -> None:
        socket = self._socket
        if socket is not None:
            try:
                await socket.close()
            except (OSError, ConnectionError, RuntimeError):
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._min_delay
        while not self._closed:
            await self._online.wait()
            if self._closed:
                break
            started = loop.time()
            try:
                if self.token_provider is not None:
                    self.token = await self.token_provider(self._force_refresh)
                    self._force_refresh = False
                socket = await self._transport(self.url.ws_url(self._session, self._host), self._headers())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no token, refused, reset, bad handshake: all mean "try again later"
                log.debug("connecting to %s failed: %r", self.url.host, exc)
            else:
                await self._serve(socket, loop)
            if self._closed or self._killed:
                break
            if loop.time() - started > HEALTHY_AFTER_S:
                delay = self._min_delay
            if self._auth_failures >= 3:
                delay = max(delay, self._max_delay)
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), random.uniform(0.05, delay))
                delay = self._min_delay
            except TimeoutError:
                delay = min(delay * 1.3, self._max_delay)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _serve(self, socket: Socket, loop: asyncio.AbstractEventLoop) -> None:
        self._socket = socket
        self._proto.reset()
        writer = loop.create_task(self._write_loop(socket))
        try:
            while True:
                frame = await socket.recv()
                try:
                    message = self._proto.receive(frame)
                except ProtocolError as exc:
                    log.warning("bad message from %s: %s", self.url.host, exc)
                    break
                if message is not None and not self._dispatch(message):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self._socket = None
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            try:
                await socket.close()
            except (OSError, ConnectionError, RuntimeError):
                pass
            self._socket_lost()

    async def _write_loop(self, socket: Socket) -> None:
        outq = self._outq
        while True:
            if not outq:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await socket.send(KEEPALIVE_FRAME)
                    continue
            while outq:
                await socket.send(outq.popleft())

    def _socket_lost(self) -> None:
        self._outq.clear()
        was_connected = self.connected
        self._connected.clear()
        lost = list(self._in_flight.values())
        self._in_flight.clear()
        for request in lost:
            if request.kind == "txn" and self._outstanding.pop(request.seq, None) is not None and request.callback:
                request.callback("disconnect", "The transaction was lost with the connection")
        if was_connected:
            self.delegate.on_disconnected()

    # -- incoming -------------------------------------------------------------------------
    def _dispatch(self, message: ServerEvent) -> bool:
        """Handle one server message; ``False`` ends the socket."""
        if isinstance(message, m.Response):
            request = self._in_flight.pop(message.r, None)
            if request is not None:
                self._outstanding.pop(request.seq, None)
                if request.callback is not None:
                    request.callback(message.b.s, message.b.d)
            return True
        if isinstance(message, m.DataPush):
            body = message.b
            self.delegate.on_data(parse_push_path(body.p), body.d, False, None if body.t is UNSET else body.t)
        elif isinstance(message, m.MergePush):
            body = message.b
            self.delegate.on_data(parse_push_path(body.p), body.d, True, None if body.t is UNSET else body.t)
        elif isinstance(message, m.ServerControl):
            return self._control(message.d)
        elif isinstance(message, m.RevokePush):
            query = message.b.q
            qid = query_id(query[0]) if query is not UNSET and query else DEFAULT_QUERY_ID
            path = parse_push_path(message.b.p)
            self._listens.pop((path, qid), None)
            self.delegate.on_listen_revoked(path, qid)
        elif isinstance(message, m.AuthRevokedPush):
            log.warning("auth revoked by the server (%s): reconnecting", message.b.s)
            self._force_refresh = True
            return False
        elif isinstance(message, m.SecurityDebugPush):
            log.info("FIREBASE: %s", message.b.msg)
        return True

    def _control(self, control: m.ServerControlBody) -> bool:
        if isinstance(control, m.Hello):
            self._session = control.d.s or None
            self._auth_failures = 0 if self.token is None else self._auth_failures
            self._restore()
            self.connect_count += 1
            self._connected.set()
            self.delegate.on_connected(control.d.ts)
        elif isinstance(control, m.Reset):
            self._host = control.d
            return False
        elif isinstance(control, m.Shutdown):
            log.warning("the server shut this client down: %s", control.d)
            self._killed = True
            return False
        elif isinstance(control, m.ServerError):
            log.error("server error: %s", control.d)
        return True

    # -- outgoing -------------------------------------------------------------------------
    def _restore(self) -> None:
        if self._first:
            self._first = False
            self._send(_Request(0, "misc", "s", {"c": {"sdk.python.0-1-0": 1}}, None))
        self._awaiting_auth = False
        if self.token:
            action = "auth" if is_user_token(self.token) else "gauth"
            self._send(_Request(0, "misc", action, {"cred": self.token}, self._on_auth))
            self._awaiting_auth = True  # the rest goes once the server has accepted the token: a
            return  # refused one would have them run unauthenticated (and be denied) before we reconnect
        self._send_state()

    def _send_state(self) -> None:
        """Every listen and every unanswered request, on a connection ready for them."""
        for listen, callback in list(self._listens.values()):
            self._send_listen(listen, callback)
        for request in sorted(self._outstanding.values(), key=lambda r: (_RESTORE_ORDER.get(r.kind, 3), r.seq)):
            self._send(request)

    def _on_auth(self, status: str, data: Any) -> None:
        held, self._awaiting_auth = self._awaiting_auth, False
        if status != "ok":
            self._auth_failures += 1
            self._force_refresh = True
            log.warning("authentication failed (%s): %s", status, data)
            asyncio.get_running_loop().create_task(self._close_socket())
        else:
            self._auth_failures = 0
            self._schedule_refresh()
            if held:
                self._send_state()

    def _schedule_refresh(self) -> None:
        """With a provider, get a new token ahead of this one's expiry and send it on the
        open connection (the server swaps the credential; nothing is re-listened)."""
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
            self._refresh_timer = None
        expiry = token_expiry(self.token) if self.token and self.token_provider is not None else None
        if expiry is None:
            return
        lifetime = expiry - self.clock()
        delay = max(lifetime - REFRESH_AHEAD_S, lifetime * 0.8, 1.0)
        self._refresh_timer = asyncio.get_running_loop().call_later(delay, self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh_timer = None
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def refresh_auth(self) -> None:
        """Ask the provider now (e.g. after a sign-in or sign-out) and send what it gives."""
        if self.token_provider is not None:
            await self._refresh()

    async def _refresh(self) -> None:
        assert self.token_provider is not None
        try:
            token = await self.token_provider(True)
        except Exception:
            log.exception("the token provider failed; the connection re-authenticates when it reconnects")
            self._force_refresh = True
            return
        self.token = token
        if not self.connected:
            return  # the next connection uses it
        if token:
            action = "auth" if is_user_token(token) else "gauth"
            self._send(_Request(0, "misc", action, {"cred": token}, self._on_auth))
        else:
            self._send(_Request(0, "misc", "unauth", {}, None))

    def _send(self, request: _Request) -> None:
        r = self._proto.next_request_id()
        self._in_flight[r] = request
        self._outq.extend(self._proto.frames(build_request(r, request.action, request.body)))
        self._wake.set()

    def request(self, kind: Kind, action: str, body: dict[str, Any], callback: ResponseCallback | None) -> None:
        """Send now if connected, else when the connection is back (re-sent if lost unanswered)."""
        self._seq += 1
        request = _Request(self._seq, kind, action, body, callback)
        self._outstanding[request.seq] = request
        if self.connected and not self._awaiting_auth:
            self._send(request)

    def listen(self, request: ListenRequest, callback: ResponseCallback) -> None:
        self._listens[(request.path, request.query_id)] = (request, callback)
        if self.connected and not self._awaiting_auth:
            self._send_listen(request, callback)

    def forget(self, request: ListenRequest) -> None:
        """Drop a listen the server refused or revoked (no ``n`` is sent)."""
        self._listens.pop((request.path, request.query_id), None)

    def unlisten(self, request: ListenRequest) -> None:
        if self._listens.pop((request.path, request.query_id), None) is None:
            return
        if self.connected and not self._awaiting_auth:  # (held: its listen was never sent here)
            body: dict[str, Any] = {"p": request_path(request.path)}
            if request.tag is not None:
                body["q"] = from_spec(request.spec)
                body["t"] = request.tag
            self._send(_Request(0, "listen", "n", body, None))

    def _send_listen(self, request: ListenRequest, callback: ResponseCallback) -> None:
        body: dict[str, Any] = {
            "p": request_path(request.path),
            "h": self.delegate.listen_hash(request.path, request.query_id),
        }
        if request.tag is not None:
            body["q"] = from_spec(request.spec)
            body["t"] = request.tag
        self._send(_Request(0, "listen", "q", body, callback))
