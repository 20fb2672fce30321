"""The hub's messages for REST streaming (Server-Sent Events): ``put`` and ``patch``
events whose paths are relative to each stream's location, and the control events
the SSE transport sends by itself. Events are text with LF line endings; one
outbox message holds the events of one ChangeSet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.path import Path
from rtdb.core.value import Node, child_at, same, to_plain
from rtdb.realtime.outbox import Frames

_encoder = msgspec.json.Encoder()

KEEP_ALIVE = "event: keep-alive\ndata: null\n\n"
CANCEL = "event: cancel\ndata: null\n\n"
AUTH_REVOKED = "event: auth_revoked\ndata: credential is no longer valid\n\n"


def event(kind: str, rel: Path, data: Any) -> str:
    """One SSE message; ``data`` is already plain JSON-able. LF line endings only."""
    payload = _encoder.encode({"path": "/" + "/".join(rel), "data": data}).decode()
    return f"event: {kind}\ndata: {payload}\n\n"


class SseRenderer:
    """:class:`~rtdb.realtime.hub.Renderer` of SSE events, as a REST ``GET`` renders
    values (no priorities, arrays where Firebase makes them). Paths are relative to
    the stream, so a message is rendered once per stream location."""

    shares_base = False

    def render_changes(
        self, at: Path, changeset: ChangeSet, changes: Sequence[Change], covers_base: bool
    ) -> Frames | None:
        events = default_events(at, changeset, changes)
        return tuple(events) if events else None

    def render_window(self, at: Path, node: Node, tag: int | None) -> Frames:
        return (event("put", (), to_plain(node)),)

    def render_merge(self, at: Path, entries: dict[str, Node], tag: int | None) -> Frames:
        return tuple(event("put", (key,), to_plain(value)) for key, value in entries.items())


def default_events(at: Path, changeset: ChangeSet, changes: Sequence[Change]) -> list[str]:
    """The events a stream at ``at`` receives for one ChangeSet (spec 3.4): a ``put`` of
    its new value when the write was at or above it; below it, one ``patch`` when an
    update set direct children of one location, else a ``put`` per written path."""
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
