"""A view: what the listeners of one query at one path have been shown, and the
changes (child events + value) that a new visible state implies.

A view keeps its own event cache (a :class:`NodeTree`): the visible node at its
path for a plain query, the window's children for a filtered one. Given the new
visible data it diffs against that cache, updates it and returns the changes in
the order the JS SDK raises them: removed, added, moved, changed, value; within a
type by query order; ``prev`` is the preceding key in the new order.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, children, priority_of, same
from rtdb_sdk.events import EventType, Registration
from rtdb_sdk.nodetree import NodeTree, child, is_object

DEFAULT_SPEC = QuerySpec()


@dataclass(frozen=True, slots=True)
class Change:
    type: EventType
    key: str | None
    node: Node
    prev: str | None = None


SortKey = tuple[Any, ...]


class _Order:
    """Children of a view in query order, for ``prev`` keys."""

    __slots__ = ("_keys", "_sorted")

    def __init__(self, items: Iterable[tuple[SortKey, str]]) -> None:
        self._sorted: list[tuple[SortKey, str]] = sorted(items)
        self._keys: dict[str, SortKey] = {k: sk for sk, k in self._sorted}

    def put(self, key: str, sk: SortKey) -> None:
        old = self._keys.get(key)
        if old is not None:
            if old == sk:
                return
            del self._sorted[bisect_left(self._sorted, (old, key))]
        self._keys[key] = sk
        insort(self._sorted, (sk, key))

    def drop(self, key: str) -> None:
        old = self._keys.pop(key, None)
        if old is not None:
            del self._sorted[bisect_left(self._sorted, (old, key))]

    def position(self, key: str) -> SortKey:
        return self._keys[key]

    def prev(self, key: str) -> str | None:
        i = bisect_left(self._sorted, (self._keys[key], key))
        return self._sorted[i - 1][1] if i > 0 else None

    def keys(self) -> list[str]:
        return [k for _, k in self._sorted]


class View:
    __slots__ = ("_order", "cache", "complete", "filtered", "path", "qid", "registrations", "spec")

    def __init__(self, path: Path, spec: QuerySpec | None, qid: str) -> None:
        self.path = path
        self.spec = spec or DEFAULT_SPEC
        self.qid = qid
        self.filtered = spec is not None and not spec.is_default
        self.registrations: list[Registration] = []
        self.complete = False
        self.cache = NodeTree()
        self._order: _Order | None = None

    @property
    def loads_all(self) -> bool:
        return not self.filtered

    def _sort_key(self, key: str, node: Node) -> SortKey:
        return self.spec.sort_key(key, self.spec.index_value(key, node))

    def _order_of(self) -> _Order:
        if self._order is None:
            kids = children(self.cache.root)
            self._order = _Order((self._sort_key(k, n), k) for k, n in kids.items())
        return self._order

    # -- transitions ---------------------------------------------------------------
    def update_children(
        self, keys: Iterable[str], read_child: Callable[[str], Node], *, partial: bool = False
    ) -> list[Change]:
        """Children ``keys`` of a plain view may have changed; ``read_child`` gives their new value.
        ``partial``: the view is not complete (child events only, no value)."""
        removed: list[tuple[str, Node]] = []
        added: list[str] = []
        changed: list[tuple[str, Node]] = []
        for key in keys:
            old = child(self.cache.root, key)
            new = read_child(key)
            if old is new or same(old, new):
                continue
            if new is None:
                removed.append((key, old))
            elif old is None:
                added.append(key)
            else:
                changed.append((key, old))
            self.cache.set((key,), new)
        if not (removed or added or changed):
            return []
        return self._changes(removed, added, changed, value=not partial)

    def update_all(self, new: Node) -> list[Change]:
        """The whole visible node at the view's path is now ``new``."""
        first = not self.complete
        self.complete = True
        if self.filtered:
            window = self.spec.apply(children(new))
            new = dict(window) or None
        old = self.cache.root
        if old is new and not first:
            return []
        old_kids = children(old)
        new_kids = children(new)
        removed = [(k, n) for k, n in old_kids.items() if k not in new_kids]
        added: list[str] = []
        changed: list[tuple[str, Node]] = []
        for k, n in new_kids.items():
            o = old_kids.get(k)
            if o is None:
                added.append(k)
            elif o is not n and not same(o, n):
                changed.append((k, o))
        root_changed = (
            (is_object(old) != is_object(new))
            or (not is_object(new) and not same(old, new))
            or (not same(priority_of(old), priority_of(new)) and not self.filtered)
        )
        self.cache.root = new
        if len(removed) + len(added) + len(changed) > len(new_kids) // 2 + 8:
            self._order = None
        return self._changes(removed, added, changed, value=True, force_value=first or root_changed)

    def _changes(
        self,
        removed: list[tuple[str, Node]],
        added: list[str],
        changed: list[tuple[str, Node]],
        *,
        value: bool,
        force_value: bool = False,
    ) -> list[Change]:
        out: list[Change] = []
        kinds = {r.kind for r in self.registrations}
        if len(kinds) > 1 or "value" not in kinds:
            kids = children(self.cache.root)
            order = self._sync_order(removed, added, changed)
            if removed:
                for k, o in sorted(removed, key=lambda r: self._sort_key(r[0], r[1])):
                    out.append(Change("child_removed", k, o))
            if added:
                for k in _by(order, added):
                    out.append(Change("child_added", k, kids[k], order.prev(k)))
            if changed:
                moved = [k for k, o in changed if self._sort_key(k, o) != order.position(k)]
                for k in _by(order, moved):
                    out.append(Change("child_moved", k, kids[k], order.prev(k)))
                for k in _by(order, [k for k, _ in changed]):
                    out.append(Change("child_changed", k, kids[k], order.prev(k)))
        else:
            self._order = None  # rebuilt when a child listener needs it
        if value and "value" in kinds and (removed or added or changed or force_value):
            out.append(Change("value", None, self.cache.share()))
        return out

    def _sync_order(self, removed: list[tuple[str, Node]], added: list[str], changed: list[tuple[str, Node]]) -> _Order:
        order = self._order
        if order is None or self.filtered:
            self._order = None
            return self._order_of()
        kids = children(self.cache.root)
        for k, _ in removed:
            order.drop(k)
        for k in added:
            order.put(k, self._sort_key(k, kids[k]))
        for k, _ in changed:
            order.put(k, self._sort_key(k, kids[k]))
        return order

    def initial(self, registration: Registration) -> list[Change]:
        """The events a new registration gets from a complete view."""
        if not self.complete:
            return []
        if registration.kind == "value":
            return [Change("value", None, self.cache.share())]
        if registration.kind != "child_added":
            return []
        kids = children(self.cache.root)
        order = self._order_of()
        out = []
        prev = None
        for k in order.keys():
            out.append(Change("child_added", k, kids[k], prev))
            prev = k
        return out


def _by(order: _Order, keys: list[str]) -> list[str]:
    return keys if len(keys) < 2 else sorted(keys, key=order.position)
