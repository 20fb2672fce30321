"""The path-keyed row layout: a node tree ↔ rows ``(path, parent, key, depth, kind, value, priority, ksort)``.

Every node (object or leaf) is one row. ``path`` is the keys joined with
``SEP`` = U+0001 (``""`` is the root). Keys never contain control characters,
so the separator sorts below every key character: the primary-key order is a
depth-first walk of the tree, all descendants of ``p`` lie in the range
``(p + SEP, p + "\x02")``, a subtree is one range scan that arrives parents
first, and the children of a node are the rows with ``parent = p``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rtdb.core.ordering import key_sort_bytes
from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, VALUE, Node, as_array

OBJECT, STRING, NUMBER, BOOLEAN = 0, 1, 2, 3

SEP = "\x01"

Row = tuple[str, str | None, str, int, int, Any, Any, bytes]


def path_key(path: Path) -> str:
    return SEP.join(path)


def parent_key(path: Path) -> str | None:
    return SEP.join(path[:-1]) if path else None


def descendant_range(p: str) -> tuple[str, str]:
    """Exclusive bounds of the paths strictly below ``p``."""
    if p == "":
        return ("", "\U0010ffff")
    return (p + SEP, p + "\x02")


def to_rows(path: Path, node: Node) -> list[Row]:
    """Rows for ``node`` stored at ``path`` (none for ``None``), parents first."""
    return list(iter_rows(path, node))


def iter_rows(path: Path, node: Node) -> Iterator[Row]:
    """The rows of :func:`to_rows` one at a time: a large write never holds them all
    (300,000 rows as tuples take about six times the JSON they came from)."""
    if node is not None:
        yield from _rows(path_key(path), parent_key(path), path[-1] if path else "", len(path), node)


def _rows(p: str, parent: str | None, key: str, depth: int, node: Node) -> Iterator[Row]:
    if not isinstance(node, dict):
        yield _leaf_row(p, parent, key, depth, node, None, key_sort_bytes(key))
        return
    if VALUE in node:
        yield _leaf_row(p, parent, key, depth, node[VALUE], node.get(PRIORITY), key_sort_bytes(key))
        return
    yield (p, parent, key, depth, OBJECT, None, node.get(PRIORITY), key_sort_bytes(key))
    prefix = p + SEP if p else ""
    depth += 1
    for k, child in node.items():
        if k == PRIORITY:
            continue
        if isinstance(child, dict):
            yield from _rows(prefix + k, p, k, depth, child)
        else:  # a plain leaf, the common case: no generator per child
            yield _leaf_row(prefix + k, p, k, depth, child, None, key_sort_bytes(k))


def _leaf_row(p: str, parent: str | None, key: str, depth: int, v: Any, priority: Any, ksort: bytes) -> Row:
    if isinstance(v, bool):
        return (p, parent, key, depth, BOOLEAN, int(v), priority, ksort)
    if isinstance(v, str):
        return (p, parent, key, depth, STRING, v, priority, ksort)
    return (p, parent, key, depth, NUMBER, v, priority, ksort)


def leaf_value(kind: int, value: Any) -> Any:
    return bool(value) if kind == BOOLEAN else value


def row_node(kind: int, value: Any, priority: Any) -> Node:
    """The node of a single leaf row (objects need their children)."""
    v = bool(value) if kind == BOOLEAN else value
    return {VALUE: v, PRIORITY: priority} if priority is not None else v


def from_rows(top_depth: int, top_row: tuple[int, Any, Any] | None,
              rows: Iterable[tuple[int, str, int, Any, Any]], *, plain: bool = False) -> Node:
    """Rebuild a node from its own row ``(kind, value, priority)`` and its descendants'
    rows ``(depth, key, kind, value, priority)`` in depth-first (primary key) order.

    With ``plain`` the result is what a REST GET shows (no priorities, arrays where
    Firebase makes them) built in the same pass."""
    if top_row is None:
        return None
    kind, value, priority = top_row
    if kind != OBJECT:
        return leaf_value(kind, value) if plain else row_node(kind, value, priority)
    root: dict[str, Any] = {PRIORITY: priority} if priority is not None and not plain else {}
    stack: list[dict[str, Any]] = [root]
    objects: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    base = top_depth + 1
    for depth, key, kind, value, priority in rows:
        level = depth - base
        if len(stack) > level + 1:
            del stack[level + 1 :]
        container = stack[level]
        if kind == OBJECT:
            d: dict[str, Any] = {PRIORITY: priority} if priority is not None and not plain else {}
            container[key] = d
            stack.append(d)
            if plain:
                objects.append((container, key, d))
        elif priority is None or plain:
            container[key] = bool(value) if kind == BOOLEAN else value
        else:
            container[key] = {VALUE: bool(value) if kind == BOOLEAN else value, PRIORITY: priority}
    if not plain:
        return root
    for container, key, d in reversed(objects):
        array = as_array(d)
        if array is not None:
            container[key] = array
    array = as_array(root)
    return root if array is None else array

