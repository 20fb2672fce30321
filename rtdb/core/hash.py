"""Firebase's node hash (wire protocol section 6): SHA-1 over the node serialization."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from rtdb.core.ordering import key_order, priority_order
from rtdb.core.value import PRIORITY, VALUE, Node, children

NULL_ETAG = "null_etag"


def _hex(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean:" + ("true" if v else "false")
    if isinstance(v, (int, float)):
        return "number:" + _hex(v)
    return "string:" + str(v)


def _b64sha1(s: str) -> str:
    return base64.b64encode(hashlib.sha1(s.encode("utf-8")).digest()).decode("ascii")


def node_hash(node: Node) -> str:
    """The hash the official SDK computes for the same data (``""`` for absence)."""
    if node is None:
        return ""
    prefix = ""
    priority = node.get(PRIORITY) if isinstance(node, dict) else None
    if priority is not None:
        prefix = "priority:" + _text(priority) + ":"
    if isinstance(node, dict) and VALUE in node:
        return _b64sha1(prefix + _text(node[VALUE]))
    if not isinstance(node, dict):
        return _b64sha1(_text(node))
    kids = children(node)
    ordered = sorted(kids.items(), key=lambda kv: (priority_order(kv[1]), key_order(kv[0])))
    return _b64sha1(prefix + "".join(":" + k + ":" + node_hash(c) for k, c in ordered))


def etag(node: Node) -> str:
    return NULL_ETAG if node is None else node_hash(node)
