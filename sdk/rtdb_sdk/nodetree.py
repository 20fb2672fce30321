"""Node trees: reading and writing values in node form (``rtdb.core.value``) by path.

Two flavours of the same operation:

* :func:`set_node` is pure: it returns a new node and shares every untouched
  subtree with the old one (path copying). Pending-write overlays use it.
* :class:`NodeTree` holds a mutable root for the mirror. It copies a dict on the
  way down only when someone else may see it: dicts it made itself are mutated
  in place until :meth:`NodeTree.share` hands them out (to a snapshot or a
  view's cache). Applying a change to a large list the app only watches with
  child events is therefore O(depth), not O(children), and a snapshot never
  changes after it was taken.
"""

from __future__ import annotations

from collections.abc import Mapping

from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, SV, VALUE, Node, priority_of, with_priority


class _Owned(dict):  # type: ignore[type-arg]
    """A dict made by a :class:`NodeTree`; mutable in place until ``shared``."""

    __slots__ = ("shared",)

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.shared = False


def is_object(node: Node) -> bool:
    """A node with children (not a leaf, not absent)."""
    return isinstance(node, dict) and VALUE not in node and SV not in node


def child(node: Node, key: str) -> Node:
    if isinstance(node, dict) and VALUE not in node and SV not in node:
        if key == PRIORITY:
            return None
        return node.get(key)
    if key == PRIORITY:
        return priority_of(node)
    return None


def get_node(node: Node, path: Path) -> Node:
    for key in path:
        if key == PRIORITY:
            return priority_of(node)
        if not isinstance(node, dict) or VALUE in node or SV in node:
            return None
        node = node.get(key)
        if node is None:
            return None
    return node


def _empty(d: Mapping[str, Node]) -> bool:
    return not d or (len(d) == 1 and PRIORITY in d)


def set_node(node: Node, path: Path, value: Node) -> Node:
    """``node`` with ``value`` at ``path`` (``None`` deletes), sharing untouched subtrees."""
    if not path:
        return value
    key = path[0]
    if key == PRIORITY and len(path) == 1:
        return with_priority(node, value)
    if is_object(node):
        old = node.get(key)
        new = set_node(old, path[1:], value)
        if new is old:
            return node
        out = dict(node)
        if new is None:
            out.pop(key, None)
            return None if _empty(out) else out
        out[key] = new
        return out
    new = set_node(None, path[1:], value)
    if new is None:
        return node
    prio = priority_of(node)
    return {key: new, PRIORITY: prio} if prio is not None else {key: new}


class NodeTree:
    """A mutable root node with copy-on-write below shared dicts."""

    __slots__ = ("root",)

    def __init__(self, root: Node = None) -> None:
        self.root: Node = root

    def get(self, path: Path) -> Node:
        """The node at ``path``; valid until the next write (use :meth:`share` to keep it)."""
        return get_node(self.root, path)

    def share(self, path: Path = ()) -> Node:
        """The node at ``path``, frozen: later writes copy it instead of changing it."""
        node = get_node(self.root, path)
        if type(node) is _Owned:
            node.shared = True
        return node

    def set(self, path: Path, value: Node) -> None:
        """Store ``value`` (a node nobody mutates) at ``path``; ``None`` deletes and prunes."""
        self.root = _set_owned(self.root, path, 0, value, False)

    def merge(self, path: Path, children: Mapping[Path, Node]) -> None:
        for rel, value in children.items():
            self.root = _set_owned(self.root, path + rel, 0, value, False)


def _set_owned(node: Node, path: Path, i: int, value: Node, copying: bool) -> Node:
    if i == len(path):
        return value
    key = path[i]
    if key == PRIORITY and i == len(path) - 1:
        return with_priority(node, value)
    if is_object(node):
        if copying or type(node) is not _Owned or node.shared:
            old = node.get(key)
            new = _set_owned(old, path, i + 1, value, True)
            if new is old:
                return node
            out = _Owned(node)
        else:
            old = node.get(key)
            new = _set_owned(old, path, i + 1, value, False)
            if new is old:
                return node
            out = node
        if new is None:
            out.pop(key, None)
            return None if _empty(out) else out
        out[key] = new
        return out
    new = _set_owned(None, path, i + 1, value, True)
    if new is None:
        return node
    out = _Owned({key: new})
    prio = priority_of(node)
    if prio is not None:
        out[PRIORITY] = prio
    return out
