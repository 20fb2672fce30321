"""The server's view of one query listen: the children currently in its window.

A :class:`QueryWindow` is built from the query's first result and then kept up
to date from committed changes alone (``Change.old``/``Change.new``): children
entering, changing, moving and leaving a range or limit window. When the changes
do not say enough (a child must be pulled in from outside a full limit window,
or a child outside the window changed deep down in a way that may move it in),
:meth:`apply` answers :data:`REFRESH` and the caller re-runs the query, which
costs at most the window, never the whole parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, child_at, children, replace_at, same

RelChange = tuple[Path, Node, Node]
"""A change relative to the query location: ``(relative path, old, new)``."""


@dataclass(frozen=True, slots=True)
class Replace:
    """The whole window changed: send it as one tagged ``d`` at the query path."""

    node: Node


@dataclass(frozen=True, slots=True)
class Merge:
    """Some children changed: send a tagged ``m`` at the query path (``None`` = left)."""

    entries: dict[str, Node]


class _Refresh:
    def __repr__(self) -> str:
        return "REFRESH"


REFRESH: Final = _Refresh()
WindowUpdate = Replace | Merge | _Refresh | None


class QueryWindow:
    """The children of a query's result, maintained incrementally.

    ``exhaustive`` is true when no in-range child exists outside the window
    (always true without a limit; with one, until the window was ever full).
    """

    __slots__ = ("spec", "items", "sort_keys", "exhaustive")

    def __init__(self, spec: QuerySpec, result: Mapping[str, Node]) -> None:
        self.spec = spec
        self.items: dict[str, Node] = {}
        self.sort_keys: dict[str, tuple[Any, ...]] = {}
        self.exhaustive = True
        self.reset(result)

    # -- public ----------------------------------------------------------------------
    def node(self) -> Node:
        return dict(self.items) or None

    def apply(self, changes: Sequence[RelChange]) -> WindowUpdate:
        """Fold one committed write's changes into the window; say what to send."""
        merge: dict[str, Node] = {}
        for rel, old, new in changes:
            if not rel:
                return self._replace(new)
            key, rest = rel[0], rel[1:]
            if key in self.items:
                child = new if not rest else replace_at(self.items[key], rest, new)
            elif not rest:
                child = new
            elif self._may_move(rest, old, new):
                return REFRESH
            else:
                continue
            if self._place(key, rest, new, child, merge) is REFRESH:
                return REFRESH
        return Merge(merge) if merge else None

    def reset(self, result: Mapping[str, Node]) -> None:
        """Start over from a fresh query result."""
        self.items = dict(result)
        self.sort_keys = {k: self._sort_key(k, v) for k, v in self.items.items()}
        self.exhaustive = self.spec.limit is None or len(self.items) < self.spec.limit

    # -- internals ---------------------------------------------------------------------
    def _sort_key(self, key: str, node: Node) -> tuple[Any, ...]:
        return self.spec.sort_key(key, self.spec.index_value(key, node))

    def _replace(self, node: Node) -> WindowUpdate:
        result = dict(self.spec.apply(children(node)))
        if same(result or None, self.node()):
            return None
        self.reset(result)
        return Replace(self.node())

    def _may_move(self, rest: Path, old: Node, new: Node) -> bool:
        """Could a change below a child outside the window bring it in?"""
        if old is None or new is None:
            return True  # the child may have been created or deleted
        order_by = self.spec.order_by
        if order_by == "child":
            child = self.spec.child
            n = min(len(rest), len(child))
            return rest[:n] == child[:n]
        return False  # keys are fixed, priorities and object values do not move on deep edits

    def _worst(self, exclude: str | None = None) -> str | None:
        keys = [k for k in self.sort_keys if k != exclude]
        if not keys:
            return None
        pick = min if self.spec.from_last else max
        return pick(keys, key=self.sort_keys.__getitem__)

    def _beyond(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        """Is sort key ``a`` further from the window's anchored end than ``b``?"""
        return a < b if self.spec.from_last else a > b

    def _place(self, key: str, rest: Path, new: Node, child: Node, merge: dict[str, Node]) -> object:
        spec = self.spec
        was_in = key in self.items
        sort_key = self._sort_key(key, child) if child is not None else None
        if sort_key is None or not spec.in_range(sort_key):
            if was_in:
                self._drop(key, merge)
                if not self.exhaustive:
                    return REFRESH  # a child from outside must take the free place
            return None
        if spec.limit is None:
            self._keep(key, rest, new, child, sort_key, merge, was_in)
            return None
        if spec.limit == 0:
            return None
        if was_in:
            worst = self._worst(exclude=key)
            self._keep(key, rest, new, child, sort_key, merge, was_in)
            if not self.exhaustive and worst is not None and self._beyond(sort_key, self.sort_keys[worst]):
                return REFRESH  # it moved past the edge: something outside may now precede it
            return None
        if len(self.items) < spec.limit and self.exhaustive:
            self._keep(key, rest, new, child, sort_key, merge, was_in)
            return None
        self.exhaustive = False
        worst = self._worst()
        if worst is not None and self._beyond(self.sort_keys[worst], sort_key):
            self._drop(worst, merge)
            self._keep(key, rest, new, child, sort_key, merge, was_in)
        return None

    def _keep(
        self,
        key: str,
        rest: Path,
        new: Node,
        child: Node,
        sort_key: tuple[Any, ...],
        merge: dict[str, Node],
        was_in: bool,
    ) -> None:
        self.items[key] = child
        self.sort_keys[key] = sort_key
        if was_in and rest and key not in merge:
            merge["/".join((key, *rest))] = new
        else:
            _drop_nested(merge, key)
            merge[key] = child

    def _drop(self, key: str, merge: dict[str, Node]) -> None:
        del self.items[key]
        del self.sort_keys[key]
        _drop_nested(merge, key)
        merge[key] = None


def _drop_nested(merge: dict[str, Node], key: str) -> None:
    prefix = key + "/"
    for k in [k for k in merge if k.startswith(prefix)]:
        del merge[k]


def relative_changes(query_path: Path, changes: Sequence[tuple[Path, Node, Node]]) -> list[RelChange]:
    """The changes as seen from ``query_path``: a change at or above it becomes a
    change of the whole location (``()``)."""
    out: list[RelChange] = []
    depth = len(query_path)
    for path, old, new in changes:
        if path[:depth] == query_path:
            out.append((path[depth:], old, new))
        elif query_path[: len(path)] == path:
            rel = query_path[len(path) :]
            out.append(((), child_at(old, rel), child_at(new, rel)))
    return out
