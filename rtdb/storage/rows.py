"""The path-keyed row layout: a node tree ↔ rows ``(path, parent, key, kind, value, priority, ksort)``.

Every node (object or leaf) is one row. ``path`` is the keys joined with
``/`` (``""`` is the root); all descendants of ``p`` have paths in the range
``(p + "/", p + "0")``, so a subtree is one index range scan and the children
of a node are the rows with ``parent = p``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rtdb.core.ordering import key_sort_bytes
from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, VALUE, Node

OBJECT, STRING, NUMBER, BOOLEAN = 0, 1, 2, 3

Row = tuple[str, str | None, str, int, Any, Any, bytes]


def path_key(path: Path) -> str:
    return "/".join(path)


def parent_key(path: Path) -> str | None:
    return "/".join(path[:-1]) if path else None


def descendant_range(p: str) -> tuple[str, str]:
    """Exclusive bounds of the paths strictly below ``p``."""
    if p == "":
        return ("", "\U0010ffff")
    return (p + "/", p + "0")


def to_rows(path: Path, node: Node) -> Iterator[Row]:
    """Rows for ``node`` stored at ``path`` (nothing for ``None``)."""
    if node is None:
        return
    yield from _rows(path_key(path), parent_key(path), path[-1] if path else "", node)


def _rows(p: str, parent: str | None, key: str, node: Node) -> Iterator[Row]:
    ksort = key_sort_bytes(key)
    if isinstance(node, dict):
        if VALUE in node:
            yield _leaf_row(p, parent, key, node[VALUE], node.get(PRIORITY), ksort)
            return
        yield (p, parent, key, OBJECT, None, node.get(PRIORITY), ksort)
        prefix = p + "/" if p else ""
        for k, child in node.items():
            if k != PRIORITY:
                yield from _rows(prefix + k, p, k, child)
        return
    yield _leaf_row(p, parent, key, node, None, ksort)


def _leaf_row(p: str, parent: str | None, key: str, v: Any, priority: Any, ksort: bytes) -> Row:
    if isinstance(v, bool):
        return (p, parent, key, BOOLEAN, int(v), priority, ksort)
    if isinstance(v, str):
        return (p, parent, key, STRING, v, priority, ksort)
    return (p, parent, key, NUMBER, v, priority, ksort)


def leaf_value(kind: int, value: Any) -> Any:
    return bool(value) if kind == BOOLEAN else value


def row_node(kind: int, value: Any, priority: Any) -> Node:
    """The node of a single leaf row (objects need their children)."""
    v = bool(value) if kind == BOOLEAN else value
    return {VALUE: v, PRIORITY: priority} if priority is not None else v


def from_rows(top: str, top_row: tuple[int, Any, Any] | None, rows: Iterable[tuple[str, str, int, Any, Any]]) -> Node:
    """Rebuild the node at ``top`` from its own row and its descendants' rows
    ``(parent, key, kind, value, priority)`` in path order (parents before children)."""
    if top_row is None:
        return None
    kind, value, priority = top_row
    if kind != OBJECT:
        return row_node(kind, value, priority)
    root: dict[str, Any] = {}
    objects: dict[str, dict[str, Any]] = {top: root}
    if priority is not None:
        root[PRIORITY] = priority
    for parent, key, kind, value, priority in rows:
        container = objects.get(parent)
        if container is None:
            continue
        if kind == OBJECT:
            d: dict[str, Any] = {PRIORITY: priority} if priority is not None else {}
            container[key] = d
            objects[parent + "/" + key if parent else key] = d
        elif priority is None:
            container[key] = bool(value) if kind == BOOLEAN else value
        else:
            container[key] = {VALUE: bool(value) if kind == BOOLEAN else value, PRIORITY: priority}
    return root
