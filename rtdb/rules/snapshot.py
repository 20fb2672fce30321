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
from rtdb.core.value import PRIORITY, SV, VALUE, Node, child_at, children, priority_of, replace_at, strip_priority
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
    if not isinstance(node, dict):
        return node  # a primitive, or None
    if VALUE in node:
        return node[VALUE]
    if SV in node:
        return strip_priority(node)
    return ObjectValue()


class Tree:
    """The stored data, read through a :class:`DataView` with a per-decision cache."""

    __slots__ = ("_cache", "_shallow", "_tops", "_view")

    def __init__(self, view: DataView) -> None:
        self._view = view
        self._cache: dict[Path, Node] = {}
        self._shallow: Callable[[Path], Node] | None = getattr(view, "shallow", None)
        self._tops: dict[Path, Node] = {}

    def _cached(self, path: Path) -> tuple[bool, Node]:
        cache = self._cache
        if not cache:
            return False, None
        if path in cache:
            return True, cache[path]
        for depth in range(len(path) - 1, -1, -1):  # a cached ancestor answers too
            ancestor = path[:depth]
            if ancestor in cache:
                return True, child_at(cache[ancestor], path[depth:])
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

    def exists_below(self, at: Path, keys: Path) -> bool:
        """``exists(at + keys)``; an overlay may answer it without joining the paths."""
        return self.exists(at + keys)

    def leaf_below(self, at: Path, keys: Path) -> Any:
        """``leaf(at + keys)``; an overlay may answer it without joining the paths."""
        return self.leaf(at + keys)


class Overlay(Tree):
    """``base`` with ``writes`` applied in order: the data as it would be after them.

    A location no write touches is answered by ``base``; a location inside a
    write from the written value; an ancestor of a non-null write is known to
    exist (as an object) without reading it.

    A single write (every ``set``) is answered without the general machinery,
    through :meth:`_single`.
    """

    __slots__ = ("_base", "_known", "_known_at", "_one", "_writes")

    def __init__(self, base: Tree, writes: list[tuple[Path, Node]]) -> None:
        super().__init__(_NO_VIEW)
        self._base = base
        self._writes = writes
        self._one: tuple[Path, Node] | None = writes[0] if len(writes) == 1 else None
        self._known_at: Path | None = None
        self._known: Node = None

    def known(self, path: Path, node: Node) -> None:
        """Tell a single-write overlay the node at ``path`` (which the caller took
        from the written value): reads at and below that very path object then
        descend from it without a lookup."""
        self._known_at, self._known = path, node

    def _single(self, path: Path) -> Node:
        """With a single write: the written node at ``path`` if ``path`` is inside
        it, else where ``path`` lies: ``_ABOVE`` a non-null write, ``_APART`` from
        it, or ``_GENERAL`` (and always ``_GENERAL`` for several writes)."""
        one = self._one
        if one is None:
            return _GENERAL
        if path is self._known_at:
            return self._known
        w, node = one
        n = len(w)
        if path[:n] != w:
            if w[: len(path)] != path:
                return _APART
            return _ABOVE if node is not None else _GENERAL
        return _descend(node, path[n:])

    def exists_below(self, at: Path, keys: Path) -> bool:
        if at is self._known_at and self._one is not None:
            return _descend(self._known, keys) is not None
        return self.exists(at + keys)

    def leaf_below(self, at: Path, keys: Path) -> Any:
        if at is self._known_at and self._one is not None:
            return _leaf(_descend(self._known, keys))
        return self.leaf(at + keys)

    def _covering(self, path: Path) -> int:
        covering = -1
        for i, (w, _) in enumerate(self._writes):
            if path[: len(w)] == w:
                covering = i
        return covering

    def _below(self, path: Path) -> list[Path]:
        return [w for w, _ in self._writes if len(w) > len(path) and w[: len(path)] == path]

    def node(self, path: Path) -> Node:
        found = self._single(path)
        if found is not _GENERAL and found is not _ABOVE and found is not _APART:
            return found
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
        found = self._single(path)
        if found is _GENERAL:
            return self._grown(path) or self.top(path) is not None
        if found is _APART:
            return self._base.exists(path)
        return found is not None  # _ABOVE included

    def has_children(self, path: Path) -> bool:
        found = self._single(path)
        if found is _GENERAL:
            return self._grown(path) or bool(children(self.top(path)))
        if found is _APART:
            return self._base.has_children(path)
        return found is _ABOVE or bool(children(found))

    def leaf(self, path: Path) -> Any:
        found = self._single(path)
        if found is _GENERAL:
            return ObjectValue() if self._grown(path) else _leaf(self.top(path))
        if found is _APART:
            return self._base.leaf(path)
        return ObjectValue() if found is _ABOVE else _leaf(found)

    def priority(self, path: Path) -> Any:
        found = self._single(path)
        if found is _GENERAL and self._covering(path) >= 0:
            return priority_of(self.node(path))
        if found is _GENERAL or found is _ABOVE or found is _APART:
            return self._base.priority(path)  # writes below a node keep its priority
        return priority_of(found)


class _Where:
    """Where a location lies relative to a single write (see :meth:`Overlay._single`)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_GENERAL, _ABOVE, _APART = _Where("general"), _Where("above"), _Where("apart")
_RESERVED = frozenset({PRIORITY, VALUE, SV})


def _descend(node: Node, keys: Path) -> Node:
    """``child_at(node, keys)`` without copying a child map on the way."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key) if key not in _RESERVED else children(node).get(key)
        if node is None:
            return None
    return node


class _NoView:
    def node(self, path: tuple[str, ...]) -> Any:  # pragma: no cover - never called
        raise AssertionError("an overlay reads through its base")


_NO_VIEW = _NoView()


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
