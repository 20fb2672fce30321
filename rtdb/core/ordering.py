"""Firebase's orderings as sort keys: key order, value order and priority order."""

from __future__ import annotations

from typing import Any

from rtdb.core.value import PRIORITY, VALUE, Node, int_key, is_leaf, strip_priority

KeyOrder = tuple[int, int, int, bytes]

MIN_KEY_ORDER: KeyOrder = (-1, 0, 0, b"")
MAX_KEY_ORDER: KeyOrder = (2, 0, 0, b"")


def key_order(key: str) -> KeyOrder:
    """``nameCompare`` as a sort key: integer keys first, then UTF-16 code-unit order."""
    n = int_key(key)
    if n is not None:
        return (0, n, len(key), b"")
    return (1, 0, 0, key.encode("utf-16-be"))


def value_order(node: Node) -> tuple[int, Any]:
    """Rank of a node under ``orderByValue``/``orderByChild``: null < false < true < numbers < strings < objects."""
    v = strip_priority(node)
    if v is None:
        return (0, 0)
    if v is False:
        return (1, 0)
    if v is True:
        return (2, 0)
    if isinstance(v, (int, float)):
        return (3, v)
    if isinstance(v, str):
        return (4, v.encode("utf-16-be"))
    return (5, 0)


def priority_order(node: Node) -> tuple[int, Any]:
    """Rank of a node's priority: none < numbers < strings."""
    p = node.get(PRIORITY) if isinstance(node, dict) else None
    if p is None:
        return (0, 0)
    if isinstance(p, str):
        return (2, p.encode("utf-16-be"))
    return (1, p)


def leaf_value(node: Node) -> Any:
    if isinstance(node, dict) and VALUE in node:
        return node[VALUE]
    return node if is_leaf(node) else None
