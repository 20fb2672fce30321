"""What each request of a WebSocket connection does (Firebase wire protocol v5).

:class:`Requests` is the request handling of :class:`rtdb.server.ws.Connection` (a base
class of it): listen, unlisten, put, merge, get and the onDisconnect registrations become
engine calls, and their answers go to the connection's outbox. It is what the connection's
:class:`~rtdb.server.lane.Lane` runs (:class:`~rtdb.server.lane.LaneOwner`); the lane
decides when. The connection keeps its lifecycle and its credentials (``auth``,
``gauth``, ``unauth``, token expiry), which this class reaches through
:meth:`_authenticate` and :meth:`_unauthenticate`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from msgspec import UNSET

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.errors import InvalidData, PreconditionFailed, RtdbError
from rtdb.core.hash import node_hash
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node
from rtdb.engine.engine import Engine
from rtdb.engine.ondisconnect import DisconnectOp, DisconnectRegistry
from rtdb.protocol import messages as m
from rtdb.protocol.codec import Frames, data_push_frames, push_frames, response_frames
from rtdb.protocol.query import query_id, to_spec
from rtdb.protocol.session import ListenEntry, ServerSession, tag_of
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox

log = logging.getLogger("rtdb.ws")

STALE_TEXT = "Transaction hash does not match"


class Requests:
    """The request handlers of one connection; the connection provides the state below."""

    engine: Engine
    registry: DisconnectRegistry
    hub: Hub
    session: ServerSession
    ns: str
    outbox: Outbox

    def _authenticate(self, request: m.Auth | m.GAuth) -> None:
        raise NotImplementedError  # the connection's credentials

    def _unauthenticate(self, request: m.Unauth) -> None:
        raise NotImplementedError  # the connection's credentials

    def ack(self, request: m.ClientRequest, result: Any, error: BaseException | None) -> None:
        """Answer a write with its response frames (``result``) or its ``error``."""
        if error is None:
            self.outbox.send(result)
        elif isinstance(error, RtdbError):
            self._respond(request.r, error.code, error.message)
        elif not isinstance(error, asyncio.CancelledError):
            log.error("request %s failed", type(request).__name__, exc_info=error)
            self._respond(request.r, "internal_error", "Internal server error")

    def _respond(self, r: int, status: str = "ok", data: Any = "") -> None:
        self.outbox.send(response_frames(r, status, data))

    async def handle(self, request: m.ClientRequest) -> None:
        """A listen, a get or an onDisconnect registration (they respond themselves)."""
        try:
            if isinstance(request, m.Listen):
                await self._listen(request)
            elif isinstance(request, m.OnDisconnectPut):
                await self._queue_put(request)
            elif isinstance(request, m.OnDisconnectMerge):
                await self._queue_merge(request)
            elif isinstance(request, m.OnDisconnectCancel):
                await self.registry.cancel(self.session.session_id, paths.parse(request.b.p))
                self._respond(request.r)
            else:
                assert isinstance(request, m.Get)
                await self._get(request)
        except RtdbError as exc:
            self._respond(request.r, exc.code, exc.message)
        except Exception:
            log.exception("request %s failed", type(request).__name__)
            self._respond(request.r, "internal_error", "Internal server error")

    async def write(self, request: m.ClientRequest) -> Frames:
        """A put or a merge; returns its response (the lane sends responses in order)."""
        if isinstance(request, m.Put):
            return await self._put(request)
        assert isinstance(request, m.Merge)
        return await self._merge(request)

    def answer_now(self, request: m.ClientRequest) -> None:
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
            self._unauthenticate(request)
        else:  # stats (acknowledged, not kept: a client could send them without end), appcheck, unappeck
            self._respond(request.r)

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
        await self.registry.register(self.session.session_id, DisconnectOp(self.ns, "set", path, request.b.d, caller))
        self._respond(request.r)

    async def _queue_merge(self, request: m.OnDisconnectMerge) -> None:
        path = paths.parse(request.b.p)
        if not isinstance(request.b.d, dict):
            raise InvalidData("onDisconnect().update() needs an object")
        caller = self.session.caller
        if request.b.d:
            await self.engine.check_write(self.ns, "update", path, request.b.d, caller=caller)
            await self.registry.register(self.session.session_id,
                                         DisconnectOp(self.ns, "update", path, request.b.d, caller))
        self._respond(request.r)


def _query_spec(query: m.WireQuery | Any) -> QuerySpec | None:
    spec = to_spec(query)
    if spec is None or spec.is_default and spec.order_by == "priority":
        return None
    return spec
