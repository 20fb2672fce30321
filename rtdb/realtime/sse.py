"""Fan-out for REST streaming (Server-Sent Events): committed ChangeSets →
``put``/``patch`` events, paths relative to each stream's location.

Streams are kept in a :class:`PathIndex`, so a ChangeSet reaches only the
streams at its written paths, their ancestors and descendants. Each distinct
event is encoded once per ChangeSet and location. Query streams keep a
:class:`QueryWindow` and are sent the window's changes (or a fresh window).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, child_at, children, same, to_plain
from rtdb.realtime.index import PathIndex
from rtdb.realtime.outbox import Outbox, RealtimeMetrics
from rtdb.realtime.window import REFRESH, Merge, QueryWindow, Replace, relative_changes

log = logging.getLogger("rtdb.sse")

_encoder = msgspec.json.Encoder()

KEEP_ALIVE = "event: keep-alive\ndata: null\n\n"
CANCEL = "event: cancel\ndata: null\n\n"
AUTH_REVOKED = "event: auth_revoked\ndata: credential is no longer valid\n\n"

PENDING, ACTIVE, REFRESHING, CLOSED = "pending", "active", "refreshing", "closed"


def event(kind: str, rel: Path, data: Any) -> str:
    """One SSE message; ``data`` is already plain JSON-able. LF line endings only."""
    payload = _encoder.encode({"path": "/" + "/".join(rel), "data": data}).decode()
    return f"event: {kind}\ndata: {payload}\n\n"


class SseStream:
    __slots__ = ("ns", "path", "spec", "outbox", "refresh", "window", "state", "seq", "backlog")

    def __init__(self, ns: str, path: Path, outbox: Outbox, *, spec: QuerySpec | None = None,
                 refresh: Callable[[], Awaitable[tuple[Node, int]]] | None = None) -> None:
        self.ns = ns
        self.path = path
        self.spec = spec if spec is not None and not spec.is_default else None
        self.outbox = outbox
        self.refresh = refresh
        self.window: QueryWindow | None = None
        self.state = PENDING
        self.seq = 0
        self.backlog: list[ChangeSet] = []


class SseFanout:
    def __init__(self, feed: Any, *, metrics: RealtimeMetrics | None = None) -> None:
        self._feed = feed
        self.metrics = metrics if metrics is not None else RealtimeMetrics()
        self._indexes: dict[str, PathIndex[SseStream]] = {}
        self._cancel_feed: dict[str, Callable[[], None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, stream: SseStream) -> None:
        index = self._indexes.get(stream.ns)
        if index is None:
            index = self._indexes[stream.ns] = PathIndex()
            self._cancel_feed[stream.ns] = self._feed.subscribe(stream.ns, self.publish)
        index.add(stream.path, stream)

    def activate(self, stream: SseStream, node: Node, seq: int) -> None:
        """The initial ``put`` (of ``node``, reflecting commit ``seq``) was queued."""
        if stream.spec is not None:
            stream.window = QueryWindow(stream.spec, children(node))
        stream.seq = max(stream.seq, seq)
        stream.state = ACTIVE
        backlog, stream.backlog = stream.backlog, []
        for changeset in backlog:
            self._deliver(stream, changeset, list(changeset.changes), {})

    def remove(self, stream: SseStream) -> None:
        stream.state = CLOSED
        index = self._indexes.get(stream.ns)
        if index is not None:
            index.remove(stream.path, stream)

    def close(self) -> None:
        for cancel in self._cancel_feed.values():
            cancel()
        self._cancel_feed.clear()
        for task in self._tasks:
            task.cancel()

    def publish(self, changeset: ChangeSet) -> None:
        index = self._indexes.get(changeset.namespace)
        if index is None or not len(index):
            return
        affected: dict[SseStream, None] = {}
        for change in changeset.changes:
            for _, stream in index.along(change.path):
                affected[stream] = None
            for _, stream in index.below(change.path):
                affected[stream] = None
        cache: dict[Path, list[str]] = {}
        for stream in affected:
            self._deliver(stream, changeset, list(changeset.changes), cache)

    def _deliver(self, stream: SseStream, changeset: ChangeSet, changes: list[Change],
                 cache: dict[Path, list[str]]) -> None:
        if stream.state in (PENDING, REFRESHING):
            stream.backlog.append(changeset)
            return
        if stream.state == CLOSED or changeset.seq <= stream.seq:
            return
        stream.seq = changeset.seq
        if stream.window is not None:
            self._deliver_window(stream, changes)
            return
        events = cache.get(stream.path)
        if events is None:
            events = cache[stream.path] = default_events(stream.path, changeset, changes)
            self.metrics.payloads_encoded += len(events)
        for text in events:
            if not stream.outbox.send((text,)):
                return

    def _deliver_window(self, stream: SseStream, changes: list[Change]) -> None:
        assert stream.window is not None
        update = stream.window.apply(relative_changes(stream.path, [(c.path, c.old, c.new) for c in changes]))
        if update is REFRESH:
            stream.state = REFRESHING
            task = asyncio.get_running_loop().create_task(self._refresh(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(update, Replace):
            stream.outbox.send((event("put", (), to_plain(stream.window.node())),))
        elif isinstance(update, Merge):
            for key, value in update.entries.items():
                stream.outbox.send((event("put", (key,), to_plain(value)),))

    async def _refresh(self, stream: SseStream) -> None:
        if stream.refresh is None:
            return
        try:
            node, seq = await stream.refresh()
        except Exception:
            log.exception("refreshing an SSE query window failed")
            stream.outbox.send((CANCEL,))
            stream.outbox.close()
            self.remove(stream)
            return
        if stream.state == CLOSED or stream.window is None:
            return
        stream.outbox.send((event("put", (), to_plain(node)),))
        stream.state = PENDING
        self.activate(stream, node, seq)


def default_events(at: Path, changeset: ChangeSet, changes: list[Change]) -> list[str]:
    """The events a stream at ``at`` receives for one ChangeSet (spec 3.4)."""
    depth = len(at)
    below: list[Change] = []
    for change in changes:
        if at[: len(change.path)] == change.path:  # written at or above the stream
            rel = at[len(change.path):]
            old, new = child_at(change.old, rel), child_at(change.new, rel)
            if not same(old, new):
                return [event("put", (), to_plain(new))]
            return []
        if change.path[:depth] == at:
            below.append(change)
    if not below:
        return []
    base = changeset.base
    if changeset.kind == "update" and base[:depth] == at and all(
        len(c.path) == len(base) + 1 for c in below
    ):
        return [event("patch", base[depth:], {c.path[-1]: to_plain(c.new) for c in below})]
    return [event("put", c.path[depth:], to_plain(c.new)) for c in below]
