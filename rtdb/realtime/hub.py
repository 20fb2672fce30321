"""Fan-out: committed ChangeSets → the messages each affected listener must receive.

One :class:`Hub` per transport subscribes to the broker per namespace and keeps
every listener in a :class:`PathIndex`. For each ChangeSet it finds the affected
listeners by walking the written paths (ancestors and descendants only), has its
:class:`Renderer` build each distinct message once and appends the same frames to
every listener's :class:`Outbox`. The hub owns matching, commit order, pending
listeners and query windows; the renderer owns the wire format (Firebase ``d``/``m``
pushes for WebSocket and long-polling in :mod:`rtdb.realtime.wire`, SSE
``put``/``patch`` events in :mod:`rtdb.realtime.sse`). Default listens get the
changes as the renderer words them; query listens keep a :class:`QueryWindow`
and get its changes.

A listener starts *pending*: the transport registers it, reads the initial
result (which carries the commit ``seq`` it reflects), sends it, then calls
:meth:`Hub.activate`; ChangeSets that arrived meanwhile are replayed if newer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.errors import RtdbError
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, children
from rtdb.realtime.index import PathIndex
from rtdb.realtime.outbox import Frames, Outbox, RealtimeMetrics
from rtdb.realtime.window import REFRESH, Merge, QueryWindow, Replace, relative_changes

log = logging.getLogger("rtdb.realtime")

RefreshFn = Callable[[], Awaitable[tuple[Node, int]]]
"""Re-runs a listener's query; returns ``(result node, seq it reflects)``."""
CancelFn = Callable[[RtdbError], None]

PENDING, ACTIVE, REFRESHING, CLOSED = "pending", "active", "refreshing", "closed"

_Payloads = dict[Path | None, Frames | None]
"""The default listeners' messages of one ChangeSet, by listener path (``None``: the
message shared by every listener at or above the base, when the renderer shares it)."""


class Feed(Protocol):
    def subscribe(self, ns: str, callback: Callable[[ChangeSet], None]) -> Callable[[], None]: ...


class Renderer(Protocol):
    """What a transport's messages look like: the hub decides who receives what, the
    renderer turns it into the frames of one outbox message. A renderer is asked once
    per distinct message of a ChangeSet, never once per listener."""

    shares_base: bool
    """Whether every default listener at or above a ChangeSet's base path receives the
    same message (paths in it are absolute), so it is rendered once per ChangeSet; if
    not, it is rendered once per listener path."""

    def render_changes(
        self, at: Path, changeset: ChangeSet, changes: Sequence[Change], covers_base: bool
    ) -> Frames | None:
        """The message for a default listener at ``at``: ``changes`` are those of
        ``changeset`` at, above or below ``at`` (all of them when ``covers_base``: ``at``
        is the base path or above it). ``None`` when nothing the listener sees changed."""
        ...

    def render_window(self, at: Path, node: Node, tag: int | None) -> Frames:
        """A query listener's whole window (it was replaced, or read again)."""
        ...

    def render_merge(self, at: Path, entries: dict[str, Node], tag: int | None) -> Frames:
        """Entries of a query listener's window that changed: relative paths (``a/b``)
        to their new values, ``None`` for children that left it."""
        ...


class Listener:
    """One listen of one connection. ``window`` is set for query (tagged) listens."""

    __slots__ = ("ns", "path", "spec", "tag", "outbox", "refresh", "on_cancel", "window", "state", "seq", "backlog")

    def __init__(
        self,
        ns: str,
        path: Path,
        outbox: Outbox,
        *,
        spec: QuerySpec | None = None,
        tag: int | None = None,
        refresh: RefreshFn | None = None,
        on_cancel: CancelFn | None = None,
    ) -> None:
        self.ns = ns
        self.path = path
        self.spec = spec if spec is not None and not spec.is_default else None
        self.tag = tag
        self.outbox = outbox
        self.refresh = refresh
        self.on_cancel = on_cancel
        self.window: QueryWindow | None = None
        self.state = PENDING
        self.seq = 0
        self.backlog: list[ChangeSet] = []

    def __repr__(self) -> str:
        return f"<Listener {self.ns}:/{'/'.join(self.path)} tag={self.tag} {self.state}>"


class Hub:
    """The fan-out of one transport: its listeners, matched against every ChangeSet of
    their namespace and sent what ``renderer`` makes of it."""

    def __init__(self, feed: Feed, renderer: Renderer, *, metrics: RealtimeMetrics | None = None) -> None:
        self._feed = feed
        self.renderer = renderer
        self._shares_base = renderer.shares_base
        self.metrics = metrics if metrics is not None else RealtimeMetrics()
        self._indexes: dict[str, PathIndex[Listener]] = {}
        self._cancel_feed: dict[str, Callable[[], None]] = {}
        self._refreshes: dict[str, set[asyncio.Task[None]]] = {}

    # -- registration ----------------------------------------------------------------
    def listen(self, listener: Listener) -> Listener:
        index = self._indexes.get(listener.ns)
        if index is None:
            index = self._indexes[listener.ns] = PathIndex()
            self._cancel_feed[listener.ns] = self._feed.subscribe(listener.ns, self.publish)
        index.add(listener.path, listener)
        return listener

    def activate(self, listener: Listener, node: Node, seq: int) -> None:
        """The listener's initial result ``node`` (reflecting commit ``seq``) was sent."""
        if listener.state == CLOSED:
            return
        if listener.spec is not None:
            listener.window = QueryWindow(listener.spec, children(node))
        self._resume(listener, seq)

    def unlisten(self, listener: Listener) -> None:
        listener.state = CLOSED
        listener.backlog = []
        index = self._indexes.get(listener.ns)
        if index is not None:
            index.remove(listener.path, listener)

    def listener_count(self, ns: str) -> int:
        index = self._indexes.get(ns)
        return len(index) if index is not None else 0

    def refreshing(self, ns: str) -> bool:
        """Whether window refreshes are running in ``ns`` (:meth:`settle` would wait)."""
        return bool(self._refreshes.get(ns))

    async def settle(self, ns: str) -> None:
        """Wait until the window refreshes running in ``ns`` have pushed their results
        (including refreshes they chain into, up to a few rounds: never a livelock)."""
        for _ in range(8):
            tasks = self._refreshes.get(ns)
            if not tasks:
                return
            await asyncio.gather(*list(tasks), return_exceptions=True)

    def close(self) -> None:
        for cancel in self._cancel_feed.values():
            cancel()
        self._cancel_feed.clear()
        for tasks in self._refreshes.values():
            for task in tasks:
                task.cancel()

    # -- fan-out ------------------------------------------------------------------------
    def publish(self, changeset: ChangeSet) -> None:
        """Deliver one committed ChangeSet (called by the broker, in seq order)."""
        index = self._indexes.get(changeset.namespace)
        if index is None or not len(index):
            return
        base = changeset.base
        # listeners at or above the base see every change (one shared tuple); those below
        # it see the changes at, above or below their own path. All are collected before
        # any delivery: an overflowing outbox may unlisten its listener meanwhile.
        everything = changeset.changes
        top = [listener for _, listener in index.along(base)]
        below: dict[Listener, list[Change]] = {}
        for change in everything:
            for _, listener in index.between(base, change.path):
                below.setdefault(listener, []).append(change)
            for _, listener in index.below(change.path):
                below.setdefault(listener, []).append(change)
        payloads: _Payloads = {}
        for listener in top:
            self._deliver(listener, changeset, everything, payloads)
        for listener, changes in below.items():
            self._deliver(listener, changeset, changes, payloads)

    def _deliver(
        self, listener: Listener, changeset: ChangeSet, changes: Sequence[Change], payloads: _Payloads
    ) -> None:
        if listener.state in (PENDING, REFRESHING):
            listener.backlog.append(changeset)
            return
        if listener.state == CLOSED or changeset.seq <= listener.seq:
            return
        listener.seq = changeset.seq
        if listener.window is None:
            at = listener.path
            base = changeset.base
            key = None if self._shares_base and base[: len(at)] == at else at
            if key in payloads:
                frames = payloads[key]
            else:
                covers_base = base[: len(at)] == at
                frames = payloads[key] = self.renderer.render_changes(at, changeset, changes, covers_base)
                if frames is not None:
                    self.metrics.payloads_encoded += 1
            if frames is not None:
                listener.outbox.send(frames)
            return
        update = listener.window.apply(relative_changes(listener.path, [(c.path, c.old, c.new) for c in changes]))
        if update is REFRESH:
            self._start_refresh(listener)
        elif isinstance(update, Replace):
            self._send_window(listener)
        elif isinstance(update, Merge):
            self.metrics.payloads_encoded += 1
            listener.outbox.send(self.renderer.render_merge(listener.path, update.entries, listener.tag))

    # -- query windows -------------------------------------------------------------------
    def _send_window(self, listener: Listener) -> None:
        assert listener.window is not None
        self.metrics.payloads_encoded += 1
        listener.outbox.send(self.renderer.render_window(listener.path, listener.window.node(), listener.tag))

    def _resume(self, listener: Listener, seq: int) -> None:
        listener.seq = max(listener.seq, seq)
        listener.state = ACTIVE
        backlog, listener.backlog = listener.backlog, []
        for changeset in backlog:
            if listener.state != ACTIVE:  # a replayed change started another refresh
                listener.backlog.append(changeset)
                continue
            changes = [c for c in changeset.changes if _overlaps(c.path, listener.path)]
            if changes:
                self._deliver(listener, changeset, changes, {})

    def _start_refresh(self, listener: Listener) -> None:
        self.metrics.window_refreshes += 1
        listener.state = REFRESHING
        tasks = self._refreshes.setdefault(listener.ns, set())
        task = asyncio.get_running_loop().create_task(self._refresh(listener))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _refresh(self, listener: Listener) -> None:
        if listener.refresh is None:
            log.error("query listener %r needs a refresh but has no reader", listener)
            return
        try:
            node, seq = await listener.refresh()
        except Exception as exc:
            if not isinstance(exc, RtdbError):
                log.exception("refreshing %r failed", listener)
                exc = RtdbError("internal error")
            if listener.state != CLOSED:
                self.unlisten(listener)
                if listener.on_cancel is not None:
                    listener.on_cancel(exc)
            return
        if listener.state == CLOSED or listener.window is None:
            return
        listener.window.reset(children(node))
        self._send_window(listener)
        self._resume(listener, seq)


def _overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]
