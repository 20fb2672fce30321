"""The sync tree: the client's whole state, sans I/O.

It combines the server cache (what the server said, untagged pushes), one cache
per tagged query listen, the ordered pending user writes and the views of the
app's listeners. Every transition — user set/merge, server overwrite/merge,
ack/revert, listen complete/failed, listener added/removed — returns the
:class:`Event` values it implies (and, for listener changes, the listens to start
and stop on the wire). Nothing here raises a callback or touches a socket.

Listens follow the JS SDK (wire spec 5.6): one default listen covers every view
below it; a filtered query gets a tagged listen unless a default listen covers
its path; adding a default listen stops the listens below it, removing it
restarts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rtdb.core.hash import node_hash
from rtdb.core.path import Path
from rtdb.core.pathmap import PathMap
from rtdb.core.query import QuerySpec
from rtdb.core.value import PRIORITY, Node, children
from rtdb.protocol.query import DEFAULT_QUERY_ID
from rtdb_sdk.events import Event, Registration
from rtdb_sdk.nodetree import NodeTree, get_node
from rtdb_sdk.view import Change, View
from rtdb_sdk.writetree import Write, WriteTree

INFO: Path = (".info",)
ListenKey = tuple[Path, str]


@dataclass(frozen=True, slots=True)
class ListenRequest:
    """A listen to start or stop on the wire. ``spec``/``tag`` are ``None`` for a default listen."""

    path: Path
    query_id: str
    spec: QuerySpec | None
    tag: int | None


@dataclass(slots=True)
class Effects:
    events: list[Event] = field(default_factory=list)
    start: list[ListenRequest] = field(default_factory=list)
    stop: list[ListenRequest] = field(default_factory=list)


@dataclass(slots=True)
class _TagCache:
    request: ListenRequest
    tree: NodeTree
    complete: bool = False


def is_info(path: Path) -> bool:
    return path[:1] == INFO


class SyncTree:
    def __init__(self) -> None:
        self.server = NodeTree()
        self.writes = WriteTree()
        self._complete: PathMap[bool] = PathMap()  # default listens answered (True) or cached from disk (False)
        self._complete.set(INFO, True)
        self._cached_memo: dict[Path, bool] = {}
        self._views: PathMap[dict[str, View]] = PathMap()
        self._listens: dict[ListenKey, ListenRequest] = {}
        self._tags: dict[int, _TagCache] = {}
        self._next_tag = 1

    # -- reading ----------------------------------------------------------------------
    def is_complete(self, path: Path) -> bool:
        """Whether the mirror holds the server's data at ``path`` (an answered default listen covers it)."""
        return any(v for _, v in self._complete.ancestors(path))

    def has_cached(self, path: Path) -> bool:
        """Complete, or loaded from the persistent cache as complete when it was saved."""
        known = self._cached_memo.get(path)
        if known is None:
            known = self._cached_memo[path] = self._complete.has_ancestor_or_self(path)
        return known

    def _set_complete(self, path: Path, value: bool | None) -> None:
        self._cached_memo.clear()
        if value is None:
            self._complete.pop(path)
        else:
            self._complete.set(path, value)

    def visible(self, path: Path) -> Node:
        """Server data with the pending writes applied (shared: safe to keep)."""
        if not len(self.writes):
            return self.server.share(path)
        return self.writes.overlay(self.server.share(path), path)

    def server_value(self, path: Path) -> Node:
        return self.server.get(path)

    def listen_hash(self, path: Path, query_id: str) -> str:
        request = self._listens.get((path, query_id))
        if request is not None and request.tag is not None:
            return node_hash(self._tags[request.tag].tree.root)
        return node_hash(self.server.get(path))

    def listen_request(self, path: Path, query_id: str) -> ListenRequest | None:
        return self._listens.get((path, query_id))

    def view(self, path: Path, query_id: str) -> View | None:
        views = self._views.get(path)
        return views.get(query_id) if views else None

    def complete_view(self, path: Path, query_id: str) -> View | None:
        view = self.view(path, query_id)
        return view if view is not None and view.complete and self._source_ready(view) else None

    # -- listeners ----------------------------------------------------------------------
    def add_registration(
        self, path: Path, spec: QuerySpec | None, query_id: str, registration: Registration
    ) -> Effects:
        views = self._views.get(path)
        if views is None:
            views = {}
            self._views.set(path, views)
        view = views.get(query_id)
        effects = Effects()
        if view is None:
            view = views[query_id] = View(path, spec, query_id)
            view.registrations.append(registration)
            effects.start, effects.stop = self._reconcile_listens()
            effects.events = self._refresh(view, None)
            if not view.complete:
                return effects
        else:
            view.registrations.append(registration)
        if not any(e.registration is registration for e in effects.events):
            effects.events += self._to_events(view, view.initial(registration), only=registration)
        return effects

    def remove_registration(
        self, path: Path, query_id: str, registration: Registration | None, error: Exception | None = None
    ) -> Effects:
        """Remove one registration (or all with ``None``); with ``error`` they get a cancel event."""
        views = self._views.get(path)
        view = views.get(query_id) if views else None
        effects = Effects()
        if view is None or views is None:
            return effects
        gone = [r for r in view.registrations if registration is None or r is registration]
        view.registrations = [r for r in view.registrations if r not in gone]
        for r in gone:
            r.active = False
            if error is not None:
                effects.events.append(Event(r, "cancel", path, error=error))
        if not view.registrations:
            del views[query_id]
            if not views:
                self._views.pop(path)
            effects.start, effects.stop = self._reconcile_listens()
        return effects

    def apply_listen_failed(self, path: Path, query_id: str, error: Exception) -> Effects:
        """A listen was refused or revoked: cancel every view it served (no unlisten is sent)."""
        request = self._listens.pop((path, query_id), None)
        if request is not None and request.tag is not None:
            self._tags.pop(request.tag, None)
        effects = Effects()
        views = self._views.get(path) or {}
        for qid, view in list(views.items()):
            if qid == query_id or (query_id == DEFAULT_QUERY_ID and view.loads_all):
                for r in view.registrations:
                    r.active = False
                    effects.events.append(Event(r, "cancel", path, error=error))
                del views[qid]
        if not views and self._views.get(path) is not None:
            self._views.pop(path)
        effects.start, effects.stop = self._reconcile_listens()
        return effects

    def _reconcile_listens(self) -> tuple[list[ListenRequest], list[ListenRequest]]:
        defaults: list[Path] = []
        filtered: list[View] = []
        for path, views in self._views.items():
            if is_info(path):
                continue
            for view in views.values():
                if view.loads_all:
                    defaults.append(path)
                else:
                    filtered.append(view)
        defaults.sort(key=len)
        covered: PathMap[bool] = PathMap()
        wanted: dict[ListenKey, ListenRequest | None] = {}
        for path in defaults:
            if not covered.has_ancestor_or_self(path):
                covered.set(path, True)
                wanted[(path, DEFAULT_QUERY_ID)] = None
        for view in filtered:
            if not covered.has_ancestor_or_self(view.path):
                wanted[(view.path, view.qid)] = None
        start: list[ListenRequest] = []
        stop: list[ListenRequest] = []
        for key in wanted:
            if key not in self._listens:
                start.append(self._start_listen(key))
        for key in [k for k in self._listens if k not in wanted]:
            stop.append(self._stop_listen(key))
        return start, stop

    def _start_listen(self, key: ListenKey) -> ListenRequest:
        path, qid = key
        if qid == DEFAULT_QUERY_ID:
            request = ListenRequest(path, qid, None, None)
        else:
            view = self.view(path, qid)
            assert view is not None
            tag = self._next_tag
            self._next_tag += 1
            request = ListenRequest(path, qid, view.spec, tag)
            seed = self.server.share(path) if self.is_complete(path) else None
            self._tags[tag] = _TagCache(request, NodeTree(seed))
        self._listens[key] = request
        return request

    def _stop_listen(self, key: ListenKey) -> ListenRequest:
        request = self._listens.pop(key)
        if request.tag is not None:
            self._tags.pop(request.tag, None)
        elif self._complete.get(request.path) is not None:
            self._set_complete(request.path, None)
        return request

    # -- user writes ----------------------------------------------------------------------
    def apply_user_set(self, write_id: int, path: Path, node: Node, raw: object = None) -> list[Event]:
        self.writes.add(Write(write_id, path, node=node, raw=raw))
        return self._refresh_around([path])

    def apply_user_merge(
        self, write_id: int, path: Path, children: Mapping[Path, Node], raw: object = None
    ) -> list[Event]:
        self.writes.add(Write(write_id, path, children=dict(children), raw=raw))
        return self._refresh_around([path + rel for rel in children])

    def apply_ack(self, write_id: int, *, revert: bool = False) -> list[Event]:
        """The server answered a write: drop it from the pending writes (``revert`` when refused)."""
        write = self.writes.remove(write_id)
        if write is None:
            return []
        return self._refresh_around([p for p, _ in write.entries()], revert=revert)

    # -- server data ----------------------------------------------------------------------
    def apply_server_overwrite(self, path: Path, node: Node, tag: int | None = None) -> list[Event]:
        if tag is not None:
            return self._apply_tagged(tag, path, {(): node})
        self.server.set(path, node)
        return self._refresh_around([path], server_only=True)

    def apply_server_merge(self, path: Path, children: Mapping[Path, Node], tag: int | None = None) -> list[Event]:
        if tag is not None:
            return self._apply_tagged(tag, path, children)
        self.server.merge(path, children)
        return self._refresh_around([path + rel for rel in children], server_only=True)

    def _apply_tagged(self, tag: int, path: Path, children: Mapping[Path, Node]) -> list[Event]:
        cache = self._tags.get(tag)
        if cache is None:
            return []  # a tag we no longer listen with: ignored, as the JS SDK does
        base = cache.request.path
        if path[: len(base)] != base:
            return []
        cache.tree.merge(path[len(base) :], children)
        view = self.view(base, cache.request.query_id)
        return self._refresh(view, None) if view is not None else []

    def apply_listen_complete(self, path: Path, query_id: str) -> list[Event]:
        request = self._listens.get((path, query_id))
        if request is None:
            return []
        if request.tag is not None:
            self._tags[request.tag].complete = True
            view = self.view(path, query_id)
            return self._refresh(view, None) if view is not None else []
        self._set_complete(path, True)
        return self._refresh_around([path], server_only=True)

    def mark_cached(self, path: Path) -> None:
        """Treat the server cache at ``path`` as complete until a listen answers (persistence)."""
        if self._complete.get(path) is None:
            self._set_complete(path, False)

    # -- event generation ----------------------------------------------------------------
    def _refresh_around(self, paths: Iterable[Path], *, server_only: bool = False, revert: bool = False) -> list[Event]:
        """Recompute the views that the change at each of ``paths`` can affect."""
        if not len(self._views):
            return []
        work: dict[int, tuple[View, set[str] | None]] = {}
        for changed in paths:
            for at, views in self._views.ancestors(changed):
                key = changed[len(at)] if len(changed) > len(at) else None
                for view in views.values():
                    if server_only and not self._uses_server(view):
                        continue
                    entry = work.get(id(view))
                    if key is None or key == PRIORITY or view.filtered:
                        work[id(view)] = (view, None)
                    elif entry is None:
                        work[id(view)] = (view, {key})
                    elif entry[1] is not None:
                        entry[1].add(key)
            for _, views in self._views.descendants(changed):
                for view in views.values():
                    if not server_only or self._uses_server(view):
                        work[id(view)] = (view, None)
        ordered = sorted(work.values(), key=lambda item: -len(item[0].path))
        events: list[Event] = []
        for view, keys in ordered:
            events += self._refresh(view, keys, server_only=server_only, revert=revert)
        return events

    def _uses_server(self, view: View) -> bool:
        if view.loads_all:
            return True
        request = self._listens.get((view.path, view.qid))
        return (
            request is None or request.tag is None or not self._tags[request.tag].complete or self.has_cached(view.path)
        )

    def _source_ready(self, view: View) -> bool:
        if self.has_cached(view.path) or (len(self.writes) and self.writes.covers(view.path)):
            return True
        request = self._listens.get((view.path, view.qid))
        return request is not None and request.tag is not None and self._tags[request.tag].complete

    def _read(self, view: View, path: Path) -> Node:
        if not self.has_cached(view.path):
            request = self._listens.get((view.path, view.qid))
            if request is not None and request.tag is not None and self._tags[request.tag].complete:
                tree = self._tags[request.tag].tree
                return self.writes.overlay(tree.share(path[len(view.path) :]), path)
        return self.visible(path)

    def _refresh(
        self, view: View, keys: set[str] | None, *, server_only: bool = False, revert: bool = False
    ) -> list[Event]:
        if not view.registrations:
            return []
        if self._source_ready(view):
            if keys is None or not view.complete:
                changes = view.update_all(self._read(view, view.path))
            else:
                changes = view.update_children(keys, lambda k: self._read(view, view.path + (k,)))
        elif not view.filtered and not server_only:
            # Not complete yet: local writes that fully cover a child raise child events
            # (no value event); an acknowledged write stays shown until the data arrives.
            if keys is None:
                keys = set(children(view.cache.root))
                keys.update(p[len(view.path)] for p in self._written_below(view.path))

            def read(key: str) -> Node:
                path = view.path + (key,)
                if self.writes.covers(path):
                    return self.visible(path)
                return None if revert else get_node(view.cache.root, (key,))

            changes = view.update_children(keys, read, partial=True)
        else:
            return []
        return self._to_events(view, changes)

    def _written_below(self, path: Path) -> list[Path]:
        out = []
        for write in self.writes.overlapping(path):
            for at, _ in write.entries():
                if len(at) > len(path) and at[: len(path)] == path:
                    out.append(at)
        return out

    def _to_events(self, view: View, changes: list[Change], only: Registration | None = None) -> list[Event]:
        events: list[Event] = []
        regs = [only] if only is not None else view.registrations
        for change in changes:
            for r in regs:
                if r.kind == change.type and r.active:
                    events.append(Event(r, change.type, view.path, change.key, change.node, change.prev, view.spec))
        return events
