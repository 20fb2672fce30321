"""The hub's messages for WebSocket and long-polling clients: Firebase wire-protocol
data pushes (``d`` overwrites a location, ``m`` merges children into it), tagged for
query listens. Paths in them are absolute, so every listener at or above a
ChangeSet's base shares one message."""

from __future__ import annotations

from collections.abc import Sequence

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.path import Path
from rtdb.core.value import Node, child_at, same
from rtdb.protocol.codec import Frames, data_push_frames, merge_push_frames


class WireRenderer:
    """:class:`~rtdb.realtime.hub.Renderer` of Firebase ``d``/``m`` pushes."""

    shares_base = True

    def render_changes(
        self, at: Path, changeset: ChangeSet, changes: Sequence[Change], covers_base: bool
    ) -> Frames | None:
        base = changeset.base
        if covers_base:  # one message for every listener at or above the base
            if len(changes) == 1 and changes[0].path == base:
                return data_push_frames(base, changes[0].new)
            depth = len(base)
            return merge_push_frames(base, {"/".join(c.path[depth:]): c.new for c in changes})
        entries: dict[str, Node] = {}
        depth = len(at)
        for change in changes:
            if at[: len(change.path)] == change.path:  # written at or above the listener
                rel = at[len(change.path) :]
                old, new = child_at(change.old, rel), child_at(change.new, rel)
                if same(old, new):
                    return None
                return data_push_frames(at, new)
            entries["/".join(change.path[depth:])] = change.new
        return merge_push_frames(at, entries) if entries else None

    def render_window(self, at: Path, node: Node, tag: int | None) -> Frames:
        return data_push_frames(at, node, tag)

    def render_merge(self, at: Path, entries: dict[str, Node], tag: int | None) -> Frames:
        return merge_push_frames(at, entries, tag)
