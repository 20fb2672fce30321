"""Values: validation of incoming JSON and the stored node form.

The stored ("node") form of a value is Firebase's export format, normalized:

* ``None`` is absence; objects never hold ``None`` or empty children;
* a leaf is ``str``, ``bool``, ``int`` or ``float`` (integral floats become ints);
* a leaf with a priority is ``{".value": leaf, ".priority": p}``;
* an object is a non-empty ``dict`` of key → node, with an optional ``".priority"``;
* arrays arrive as objects keyed ``"0"``, ``"1"`` …;
* a server value placeholder ``{".sv": …}`` may stand for a leaf until it is resolved.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from typing import Any

from rtdb.core.errors import InvalidData, TooBig
from rtdb.core.path import MAX_DEPTH, MAX_PATH_BYTES, Path, byte_length, check_key

Node = Any

MAX_STRING_BYTES = 10 * 1024 * 1024
MAX_SAFE_INT = 2**53
PRIORITY = ".priority"
VALUE = ".value"
SV = ".sv"

_INT_KEY = re.compile(r"^-?(0*)\d{1,10}$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
NOT_FINITE = "Invalid data; numbers must be finite"
TOO_DEEP = f"Invalid data; path specified exceeds the maximum depth that can be written ({MAX_DEPTH})"
LONE_SURROGATE = "Invalid data; strings must be valid Unicode (no lone surrogates)"


def normalize(value: Any, at: Path = ()) -> Node:
    """Validate a decoded JSON value written at ``at`` and return its node form.

    Raises :class:`InvalidData` (or :class:`TooBig`) with Firebase's wording.
    """
    return _normalize(value, len(at), byte_length(at), top=True)


def _normalize(value: Any, depth: int, nbytes: int, *, top: bool = False) -> Node:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):  # no UTF-8 form: never stored or sent
            raise InvalidData(LONE_SURROGATE)
        if len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
            raise TooBig("Invalid data; string value exceeds the maximum size of 10485760 bytes")
        return value
    if isinstance(value, int):
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return value
        value = as_double(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidData(NOT_FINITE)
        if value.is_integer() and abs(value) <= MAX_SAFE_INT:
            return int(value)
        return value
    if isinstance(value, list):
        value = {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise InvalidData("Invalid data; couldn't parse JSON object, array, or value.")
    if SV in value:
        return _check_server_value(value)
    priority = _normalize_priority(value[PRIORITY]) if PRIORITY in value else None
    if VALUE in value:
        if any(k not in (VALUE, PRIORITY) for k in value):
            raise InvalidData("Invalid data; '.value' cannot be combined with other children")
        raw = value[VALUE]
        if isinstance(raw, list) or isinstance(raw, dict) and SV not in raw:
            # checked before descending: nested '.value' wrappers add no depth to count
            raise InvalidData("Invalid data; '.value' must be a primitive")
        inner = _normalize(raw, depth, nbytes)
        if inner is None:
            return None
        return {VALUE: inner, PRIORITY: priority} if priority is not None else inner
    children: dict[str, Node] = {}
    child_depth = depth + 1
    if child_depth > MAX_DEPTH and any(k != PRIORITY for k in value):
        raise InvalidData(TOO_DEEP)
    sep = 1 if depth else 0
    for key, child in value.items():
        if key == PRIORITY:
            continue
        if type(key) is not str:
            raise InvalidData("Invalid data; keys must be strings")
        check_key(key)
        child_bytes = nbytes + (len(key) if key.isascii() else len(key.encode())) + sep
        if child_bytes > MAX_PATH_BYTES:
            raise InvalidData(f"Invalid data; key path longer than {MAX_PATH_BYTES} bytes")
        kind = type(child)
        # the common leaves without a call each (an import normalizes millions of them)
        if kind is str and child.isascii() and len(child) <= MAX_STRING_BYTES or kind is bool:
            children[key] = child
        elif kind is int and -MAX_SAFE_INT <= child <= MAX_SAFE_INT:
            children[key] = child
        else:
            node = _normalize(child, child_depth, child_bytes)
            if node is not None:
                children[key] = node
    if not children:
        return None
    if priority is not None:
        children[PRIORITY] = priority
    return children


def _normalize_priority(p: Any) -> Any:
    if p is None:
        return p
    if isinstance(p, (str, int, float)) and not isinstance(p, bool):
        return _normalize(p, 0, 0)
    if isinstance(p, dict) and SV in p:
        return _check_server_value(p)
    raise InvalidData("Invalid data; priority must be a string, a number or null")


def _check_server_value(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) != 1:
        raise InvalidData("Invalid data; '.sv' cannot be combined with other children")
    sv = value[SV]
    if sv == "timestamp":
        return value
    if isinstance(sv, dict) and list(sv) == ["increment"]:
        n = sv["increment"]
        if isinstance(n, (int, float)) and not isinstance(n, bool):
            n = _normalize(n, 0, 0)  # an integer beyond a double's range is refused here
            return value if n is sv["increment"] else {SV: {"increment": n}}
    raise InvalidData("Invalid data; invalid server value type")


def as_double(n: int) -> float:
    """An integer as the double a client holds; :class:`InvalidData` beyond a double's range
    (``1`` followed by 400 zeros is Infinity in JavaScript)."""
    try:
        return float(n)
    except OverflowError:
        raise InvalidData(NOT_FINITE) from None


def priority_of(node: Node) -> Any:
    return node.get(PRIORITY) if isinstance(node, dict) else None


def strip_priority(node: Node) -> Node:
    """The node without its own priority (children keep theirs)."""
    if not isinstance(node, dict):
        return node
    if VALUE in node:
        return node[VALUE]
    if PRIORITY in node:
        return {k: v for k, v in node.items() if k != PRIORITY}
    return node


def with_priority(node: Node, priority: Any) -> Node:
    """``node`` carrying ``priority`` (``None`` clears it)."""
    bare = strip_priority(node)
    if priority is None or bare is None:
        return bare
    if isinstance(bare, dict):
        return {**bare, PRIORITY: priority}
    return {VALUE: bare, PRIORITY: priority}


def is_leaf(node: Node) -> bool:
    return not isinstance(node, dict) or VALUE in node or SV in node


def children(node: Node) -> dict[str, Node]:
    """The child map of a node (empty for leaves and absence)."""
    if not isinstance(node, dict) or VALUE in node or SV in node:
        return {}
    if PRIORITY in node:
        return {k: v for k, v in node.items() if k != PRIORITY}
    return node


def child_at(node: Node, path: Path) -> Node:
    for key in path:
        node = children(node).get(key)
        if node is None:
            return None
    return node


def replace_at(node: Node, rel: Path, new: Node) -> Node:
    """``node`` with its descendant at ``rel`` replaced by ``new``, as the store does it:
    empty objects are pruned, a leaf written below becomes an object keeping its
    priority, and deleting below a leaf or an absent child changes nothing."""
    if not rel:
        return new
    key, rest = rel[0], rel[1:]
    kids = dict(children(node))
    updated = replace_at(kids.get(key), rest, new)
    if updated is None and key not in kids:
        return node
    if updated is None:
        kids.pop(key, None)
    else:
        kids[key] = updated
    if not kids:
        return None
    priority = priority_of(node)
    if priority is not None:
        kids[PRIORITY] = priority
    return kids


def to_plain(node: Node) -> Any:
    """Render a node as a normal REST GET does: no priorities, arrays where Firebase makes them.
    An object that is plain already is returned itself, not copied (a large write's echo)."""
    if not isinstance(node, dict):
        return node
    if VALUE in node:
        return node[VALUE]
    out: dict[str, Any] | None = None  # made at the first child that changes
    for i, (key, child) in enumerate(node.items()):
        plain = to_plain(child) if isinstance(child, dict) else child
        if out is None:
            if plain is child and key != PRIORITY:
                continue
            out = dict(itertools.islice(node.items(), i))
        if key != PRIORITY:
            out[key] = plain
    if out is None:
        out = node
    array = as_array(out)
    return out if array is None else array


def as_array(d: dict[str, Any]) -> list[Any] | None:
    """``d`` as the array Firebase shows for it (missing indices become null), or ``None``
    when its keys fail :func:`array_indices`."""
    indices = array_indices(d)
    if indices is None:
        return None
    out: list[Any] = [None] * (max(indices) + 1)
    for n, v in zip(indices, d.values()):
        out[n] = v
    return out


def array_indices(keys: Iterable[str]) -> list[int] | None:
    """Firebase's array heuristic on an object's keys: the index each key stands for when
    every key is a non-negative integer key and more than half of 0..max are present;
    ``None`` otherwise (and for no keys)."""
    indices = []
    for key in keys:
        if not key[:1].isdigit():
            return None
        n = int_key(key)
        if n is None or n < 0:
            return None
        indices.append(n)
    if not indices or max(indices) >= 2 * len(indices):
        return None
    return indices


def int_key(key: str) -> int | None:
    """The integer a key stands for under Firebase's 32-bit integer-key rule."""
    if _INT_KEY.match(key):
        n = int(key)
        if -(2**31) <= n <= 2**31 - 1:
            return n
    return None


def shallow(node: Node) -> Any:
    """``shallow=true``: primitives as is, objects as ``{child: true}``."""
    kids = children(node)
    if not kids:
        return to_plain(node)
    return {k: True for k in kids}


def same(a: Node, b: Node) -> bool:
    """Equality of nodes that tells ``true`` from ``1`` (Python's ``==`` does not)."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return False
        return all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b
    )
