"""RuleDataSnapshot and the two data trees it reads: the stored data as it is
(``root``/``data``) and a lazy overlay of pending writes over it (``newData``).

Nothing here materializes the database: a snapshot holds a path and reads only
the node its method needs, through :class:`DataView.node`. Reads are cached for
the duration of one decision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rtdb.core.path import Path, is_valid_key
from rtdb.core.value import Node, child_at, children, is_leaf, priority_of, replace_at, strip_priority
from rtdb.rules.errors import EvalError


class DataView(Protocol):
    """Read access to stored data, given by the engine.

    A view may also offer ``shallow(path)``: the node at ``path`` with each
    child replaced by ``True`` (its own value and priority kept). Rules then
    answer ``exists()``, ``val()``, ``hasChildren()`` and ``getPriority()``
    without reading a whole subtree.
    """

    def node(self, path: tuple[str, ...]) -> Any:
        """The stored node (node form) at an absolute path, ``None`` if absent."""
        ...


class ObjectValue:
    """What ``val()`` gives for a non-leaf: equal to nothing but itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<object>"


def _leaf(node: Node) -> Any:
    if node is None:
        return None
    if is_leaf(node):
        return strip_priority(node)
    return ObjectValue()


class Tree:
    """The stored data, read through a :class:`DataView` with a per-decision cache."""

    def __init__(self, view: DataView) -> None:
        self._view = view
        self._cache: dict[Path, Node] = {}
        self._shallow: Callable[[Path], Node] | None = getattr(view, "shallow", None)
        self._tops: dict[Path, Node] = {}

    def _cached(self, path: Path) -> tuple[bool, Node]:
        if path in self._cache:
            return True, self._cache[path]
        for depth in range(len(path) - 1, -1, -1):  # a cached ancestor answers too
            ancestor = path[:depth]
            if ancestor in self._cache:
                return True, child_at(self._cache[ancestor], path[depth:])
        return False, None

    def node(self, path: Path) -> Node:
        found, node = self._cached(path)
        if not found:
            node = self._view.node(path)
            self._cache[path] = node
        return node

    def top(self, path: Path) -> Node:
        """The node at ``path`` where only its own value, priority and whether it
        has children matter (children may be stubs)."""
        found, node = self._cached(path)
        if found or self._shallow is None:
            return node if found else self.node(path)
        if path not in self._tops:
            self._tops[path] = self._shallow(path)
        return self._tops[path]

    def exists(self, path: Path) -> bool:
        return self.top(path) is not None

    def priority(self, path: Path) -> Any:
        return priority_of(self.top(path))

    def leaf(self, path: Path) -> Any:
        """The leaf value, :class:`ObjectValue` for a non-leaf, ``None`` if absent."""
        return _leaf(self.top(path))

    def has_children(self, path: Path) -> bool:
        return bool(children(self.top(path)))


class Overlay(Tree):
    """``base`` with ``writes`` applied in order: the data as it would be after them.

    A location no write touches is answered by ``base``; a location inside a
    write from the written value; an ancestor of a non-null write is known to
    exist (as an object) without reading it.
    """

    def __init__(self, base: Tree, writes: list[tuple[Path, Node]]) -> None:
        super().__init__(_NoView())
        self._base = base
        self._writes = writes

    def _covering(self, path: Path) -> int:
        covering = -1
        for i, (w, _) in enumerate(self._writes):
            if path[: len(w)] == w:
                covering = i
        return covering

    def _below(self, path: Path) -> list[Path]:
        return [w for w, _ in self._writes if len(w) > len(path) and w[: len(path)] == path]

    def node(self, path: Path) -> Node:
        if path in self._cache:
            return self._cache[path]
        covering = self._covering(path)
        if covering >= 0:
            w, value = self._writes[covering]
            node = child_at(value, path[len(w) :])
            later = self._writes[covering + 1 :]
        else:
            node = self._base.node(path)
            later = self._writes
        for w, value in later:
            if len(w) > len(path) and w[: len(path)] == path:
                node = replace_at(node, w[len(path) :], value)
        self._cache[path] = node
        return node

    def top(self, path: Path) -> Node:
        if self._covering(path) < 0 and not self._below(path):
            return self._base.top(path)
        return self.node(path)

    def _grown(self, path: Path) -> bool:
        """True when a write below ``path`` (and none over it) leaves data there."""
        if self._covering(path) >= 0:
            return False
        return any(self.node(w) is not None for w in self._below(path))

    def exists(self, path: Path) -> bool:
        return self._grown(path) or self.top(path) is not None

    def has_children(self, path: Path) -> bool:
        return self._grown(path) or bool(children(self.top(path)))

    def leaf(self, path: Path) -> Any:
        return ObjectValue() if self._grown(path) else _leaf(self.top(path))

    def priority(self, path: Path) -> Any:
        if self._covering(path) < 0:  # writes below a node keep its priority
            return self._base.priority(path)
        return priority_of(self.node(path))


class _NoView:
    def node(self, path: tuple[str, ...]) -> Any:  # pragma: no cover - never called
        raise AssertionError("an overlay reads through its base")


class Snapshot:
    """A RuleDataSnapshot: a location in one tree. ``path`` is ``None`` for a
    location that cannot exist (a child path with characters forbidden in keys)."""

    __slots__ = ("path", "tree")

    def __init__(self, tree: Tree, path: Path | None) -> None:
        self.tree = tree
        self.path = path

    def __repr__(self) -> str:
        where = "<nowhere>" if self.path is None else "/" + "/".join(self.path)
        return f"snapshot({where})"

    def child(self, sub: Any) -> Snapshot:
        if not isinstance(sub, str):
            raise EvalError(f"child() needs a string, got {_kind(sub)}")
        if self.path is None:
            return self
        keys = [k for k in sub.split("/") if k]
        if not keys or not all(is_valid_key(k) for k in keys):
            return Snapshot(self.tree, None)
        return Snapshot(self.tree, self.path + tuple(keys))

    def parent(self) -> Snapshot:
        if self.path is None:
            return self
        if not self.path:
            raise EvalError("parent() of the root")
        return Snapshot(self.tree, self.path[:-1])

    def exists(self) -> bool:
        return self.path is not None and self.tree.exists(self.path)

    def val(self) -> Any:
        return None if self.path is None else self.tree.leaf(self.path)

    def get_priority(self) -> Any:
        return None if self.path is None else self.tree.priority(self.path)

    def has_child(self, sub: Any) -> bool:
        if not isinstance(sub, str):
            raise EvalError(f"hasChild() needs a string, got {_kind(sub)}")
        return bool(sub) and self.child(sub).exists()

    def has_children(self, names: list[Any] | None = None) -> bool:
        if names is None:
            return self.path is not None and self.tree.has_children(self.path)
        return all(self.has_child(name) for name in names)

    def is_number(self) -> bool:
        v = self.val()
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def is_string(self) -> bool:
        return isinstance(self.val(), str)

    def is_boolean(self) -> bool:
        return isinstance(self.val(), bool)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__
