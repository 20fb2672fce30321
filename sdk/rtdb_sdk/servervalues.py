"""Server values: placeholders the server resolves when it applies a write.

The client sends them unresolved and resolves them only for its own optimistic
view (timestamp ≈ local clock + server time offset; increment on the visible
value); the server's value replaces the guess when it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtdb.core import servervalue
from rtdb.core.path import Path
from rtdb.core.value import Node

SERVER_TIMESTAMP: dict[str, Any] = {".sv": "timestamp"}


def increment(delta: int | float) -> dict[str, Any]:
    """Add ``delta`` to the number stored at the location (or store ``delta``) atomically on the server."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError("increment() needs a number")
    return {".sv": {"increment": delta}}


def resolve_locally(node: Node, at: Path, now_ms: int, current: Callable[[Path], Node]) -> Node:
    return servervalue.resolve(node, at, now_ms, current)
