"""Firebase's orderings as sort keys: key order, value order and priority order."""

from __future__ import annotations

import functools
import struct
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


def priority_rank(p: Any) -> tuple[int, Any]:
    """Rank of a priority value: none < numbers < strings."""
    if isinstance(p, str):
        return (2, p.encode("utf-16-be"))
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        return (1, p)
    return (0, 0)


def priority_order(node: Node) -> tuple[int, Any]:
    """Rank of a node's own priority."""
    return priority_rank(node.get(PRIORITY) if isinstance(node, dict) else None)


@functools.lru_cache(maxsize=8192)  # field names repeat in every record written
def key_sort_bytes(key: str) -> bytes:
    """Bytes whose memcmp order is :func:`key_order` (for SQL indexes)."""
    n = int_key(key)
    if n is not None:
        return b"\x00" + struct.pack(">Q", n + 2**63) + bytes([len(key)])
    return b"\x01" + key.encode("utf-16-be")


def _double_sort_bytes(x: float) -> bytes:
    (bits,) = struct.unpack(">Q", struct.pack(">d", float(x)))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | 1 << 63
    return struct.pack(">Q", bits)


def value_sort_bytes(node: Node) -> bytes:
    """Bytes whose memcmp order is :func:`value_order` (for SQL indexes)."""
    rank, v = value_order(node)
    if rank == 3:
        return b"\x03" + _double_sort_bytes(v)
    if rank == 4:
        return b"\x04" + bytes(v)
    return bytes([rank])


def leaf_value(node: Node) -> Any:
    if isinstance(node, dict) and VALUE in node:
        return node[VALUE]
    return node if is_leaf(node) else None
