"""Server values: ``{".sv": "timestamp"}`` and ``{".sv": {"increment": n}}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, SV, VALUE, Node, normalize, strip_priority


def contains_server_value(node: Node) -> bool:
    if not isinstance(node, dict):
        return False
    stack = [node]  # a loop, not a generator per object: every write asks this
    while stack:
        obj = stack.pop()
        if SV in obj:
            return True
        for child in obj.values():
            if isinstance(child, dict):
                stack.append(child)
    return False


def resolve(node: Node, at: Path, now_ms: int, current: Callable[[Path], Node]) -> Node:
    """Replace every placeholder in ``node`` (written at ``at``); ``current`` reads the
    value stored before the write, for ``increment``."""
    if not contains_server_value(node):
        return node
    return _resolve(node, at, now_ms, current)


def _resolve(node: Node, at: Path, now_ms: int, current: Callable[[Path], Node]) -> Node:
    if not isinstance(node, dict):
        return node
    if SV in node:
        return _resolve_one(node[SV], at, now_ms, current)
    out: dict[str, Any] = {}
    for key, child in node.items():
        if key == PRIORITY:
            out[key] = _resolve_one(child[SV], at, now_ms, current) if isinstance(child, dict) else child
        elif key == VALUE:
            out[key] = _resolve(child, at, now_ms, current)
        else:
            out[key] = _resolve(child, at + (key,), now_ms, current)
    return normalize(out)


def _resolve_one(sv: Any, at: Path, now_ms: int, current: Callable[[Path], Node]) -> Any:
    if sv == "timestamp":
        return now_ms
    delta = sv["increment"]
    existing = strip_priority(current(at))
    if isinstance(existing, (int, float)) and not isinstance(existing, bool):
        return normalize(existing + delta)
    return delta
