"""The row layout of a namespace's tree (format 2): one row per stored node, small
subtrees packed into one row.

A row is ``(parent, ksort, kind, value, priority)`` with primary key ``(parent, ksort)``:

* ``parent`` is the path of the object holding the node, its keys joined with ``SEP``
  = U+0001 (``""`` for the root's children). Keys never contain control characters, so
  the separator sorts below every key character: the rows of a subtree at ``p`` are the
  rows whose parent lies in ``[p, p + "\\x02")``, one range of the primary key, and in
  that order every object's row comes before the rows of its children.
* ``ksort`` is the node's key as bytes whose memcmp order is Firebase's key order
  (:func:`key_bytes`; decoded by :func:`key_of`). The full path is never stored.
* ``kind``: ``OBJECT`` (its children are rows), a leaf (``STRING``, ``NUMBER``,
  ``BOOLEAN``, the value in ``value``), or ``PACKED``/``PACKED_RICH``: an object whose
  whole subtree is small (at most about ``PACK_MAX`` bytes) and is stored in ``value``
  as the JSON text of its children (keys in Firebase order, priorities inside as
  ``.priority``/``.value``). ``PACKED`` means the subtree is plain already (no
  priorities below, nothing a REST read shows as an array): its text is what a read
  sends, so a read that only sends it passes the stored bytes through
  (``msgspec.Raw``) without building a value; ``PACKED_RICH`` needs
  :func:`rtdb.core.value.to_plain`.
* ``priority``: the node's own priority (objects, packed objects and leaves alike).

The root is the row ``("", b"")`` (no key encodes to ``b""``): an object row, or a leaf.
An object row exists exactly while the object has children; the root is never packed.

Packing keeps a write's cost in proportion to what it changes: a write inside a packed
subtree rewrites that one row (bounded by ``PACK_MAX``); a subtree that grows past it is
unpacked into rows, its small children packed in turn. :class:`Packer` decides, from a
depth-first walk, with memory bounded by the depth times ``PACK_MAX``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

import msgspec

from rtdb.core.ordering import key_order
from rtdb.core.path import Path
from rtdb.core.value import PRIORITY, VALUE, Node, array_indices, int_key, to_plain

FORMAT = 2
"""``PRAGMA user_version`` of a file in this layout (format 1 kept one row per node keyed by its full path)."""

OBJECT, STRING, NUMBER, BOOLEAN, PACKED, PACKED_RICH = 0, 1, 2, 3, 4, 5
PACKED_KINDS = (PACKED, PACKED_RICH)

SEP = "\x01"
ROOT_KSORT = b""
PACK_MAX = 1900
"""The largest subtree (estimated bytes, a little above its JSON size) stored as one row:
with ``PAGE_SIZE`` pages SQLite keeps a row of up to about 2,030 bytes on its b-tree page; a
larger one would spill into an overflow page of its own, mostly empty."""
PAGE_SIZE = 8192
"""The page size of new files (4,096 would put a 1–4 KB packed row on overflow pages: 2.2× the
JSON of a 1,000 × 100 tree, against 1.0× with 8,192; 16,384 costs more per small commit)."""

Row = tuple[str, bytes, int, Any, Any]

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode
_INT = struct.Struct(">I")
_NUMERIC_START = frozenset("-0123456789")  # an integer key starts with one of these


# -- keys -------------------------------------------------------------------------
def key_bytes(key: str) -> bytes:
    """``key`` as bytes in Firebase's key order: integer keys first, by value (a key
    that spells its integer with leading zeros after the plain one), then strings by
    UTF-16 code units (CESU-8: UTF-8 with astral characters as surrogate pairs)."""
    if key[:1] not in _NUMERIC_START and key.isascii():  # the common key: no integer, ASCII
        return b"\x01" + key.encode()
    n = int_key(key)
    if n is not None:
        head = b"\x00" + _INT.pack(n + 2**31)
        return head if key == str(n) else head + bytes([len(key)]) + key.encode()
    if key.isascii():
        return b"\x01" + key.encode()
    return b"\x01" + _cesu8(key)


def _cesu8(key: str) -> bytes:
    return "".join(_astral(c) or c for c in key).encode("utf-8", "surrogatepass")


def _astral(c: str) -> str | None:
    """A lone astral character as its surrogate pair; ``None`` for anything else."""
    if len(c) != 1 or ord(c) < 0x10000:
        return None
    n = ord(c) - 0x10000
    return chr(0xD800 + (n >> 10)) + chr(0xDC00 + (n & 0x3FF))


@functools.lru_cache(maxsize=65536)
def key_of(ksort: bytes) -> str:
    """The key :func:`key_bytes` encoded."""
    if ksort[0] == 0:
        if len(ksort) == 5:
            return str(_INT.unpack_from(ksort, 1)[0] - 2**31)
        return ksort[6:].decode()
    text = ksort[1:].decode("utf-8", "surrogatepass")
    if text.isascii():
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def path_key(path: Path) -> str:
    return SEP.join(path)


def below(p: str) -> tuple[str, str | None]:
    """Bounds ``[lo, hi)`` of the ``parent`` column over the rows below the node at ``p``
    (``hi`` is ``None`` for the root: every row)."""
    return (p, p + "\x02") if p else ("", None)


def child_path_key(parent: str, key: str) -> str:
    return parent + SEP + key if parent else key


def locator(path: Path) -> tuple[str, bytes]:
    """The primary key of the row of the node at ``path``."""
    if not path:
        return "", ROOT_KSORT
    return SEP.join(path[:-1]), key_bytes(path[-1])


# -- values -----------------------------------------------------------------------
def leaf_row(parent: str, ksort: bytes, value: Any, priority: Any) -> Row:
    if isinstance(value, bool):
        return (parent, ksort, BOOLEAN, int(value), priority)
    if isinstance(value, str):
        return (parent, ksort, STRING, value, priority)
    return (parent, ksort, NUMBER, value, priority)


def leaf_value(kind: int, value: Any) -> Any:
    return bool(value) if kind == BOOLEAN else value


def row_node(kind: int, value: Any, priority: Any, *, plain: bool = False, raw: bool = False) -> Node:
    """The node a row holds (an ``OBJECT`` row needs its children: not here). ``raw``: the
    caller only encodes the result as JSON, so a plain packed row may come as its stored
    text (``msgspec.Raw``)."""
    if raw and kind == PACKED and (plain or priority is None):
        return msgspec.Raw(value)
    if kind in PACKED_KINDS:
        kids = _DECODE(value)
        if plain:
            return kids if kind == PACKED else to_plain(kids)
        if priority is not None:
            kids[PRIORITY] = priority
        return kids
    v = bool(value) if kind == BOOLEAN else value
    if priority is None or plain:
        return v
    return {VALUE: v, PRIORITY: priority}


def unpacked(value: Any) -> dict[str, Node]:
    """The children of a packed row, priorities inside (the row's own priority is not)."""
    out: dict[str, Node] = _DECODE(value)
    return out


def _plain_order(keys: list[str]) -> bool:
    """Whether sorting ``keys`` as strings gives Firebase's order (no integer keys, ASCII)."""
    return all(k[:1] not in _NUMERIC_START and k.isascii() for k in keys)


def sorted_children(kids: dict[str, Node]) -> dict[str, Node]:
    """``kids`` in Firebase key order (priority last), nested objects too."""
    out: dict[str, Node] = {}
    keys = [k for k in kids if k != PRIORITY]
    for key in sorted(keys) if _plain_order(keys) else sorted(keys, key=key_order):
        child = kids[key]
        out[key] = sorted_children(child) if isinstance(child, dict) and VALUE not in child else child
    if PRIORITY in kids:
        out[PRIORITY] = kids[PRIORITY]
    return out


# -- packing ----------------------------------------------------------------------
def _text_size(text: str) -> int:
    """At least the UTF-8 length of ``text`` (without encoding it)."""
    return len(text) if text.isascii() else 3 * len(text)


def _leaf_size(key: str, value: Any) -> int:
    """About the JSON size of ``"key":value,`` (numbers at their longest)."""
    if isinstance(value, str):
        return _text_size(key) + _text_size(value) + 6
    if isinstance(value, dict):  # {".value": v, ".priority": p}
        return _leaf_size(key, value[VALUE]) + 48
    return _text_size(key) + 28


class _Frame:
    __slots__ = ("parent", "key", "path", "priority", "kids", "size", "rich", "spilled")

    def __init__(self, parent: str, key: str, path: str, priority: Any) -> None:
        self.parent = parent
        self.key = key
        self.path = path
        self.priority = priority
        self.kids: dict[str, Node] = {}
        self.size = len(key) + 4
        self.rich = False
        self.spilled = False


class Packer:
    """Turns a depth-first walk of a tree into rows: objects whose subtree stays within
    ``PACK_MAX`` become one packed row, larger ones an ``OBJECT`` row with their
    children as rows. ``emit`` receives each row once it is decided; the top object
    (where the walk starts) is never packed when ``top_packable`` is false (the root)."""

    def __init__(self, emit: Callable[[Row], None], pack_max: int = PACK_MAX) -> None:
        self.emit = emit
        self.pack_max = pack_max
        self.stack: list[_Frame] = []

    # the walk: open/close objects, leaves in between
    def open(self, parent: str, key: str, priority: Any, *, packable: bool = True) -> None:
        path = child_path_key(parent, key) if key else parent
        frame = _Frame(parent, key, path, priority)
        self.stack.append(frame)
        if not packable:
            self._spill(len(self.stack) - 1)

    def leaf(self, key: str, value: Any, priority: Any) -> None:
        frame = self.stack[-1]
        if frame.spilled:
            self.emit(leaf_row(frame.path, key_bytes(key), value, priority))
            return
        if priority is None:
            frame.kids[key] = value
        else:
            frame.kids[key] = {VALUE: value, PRIORITY: priority}
            frame.rich = True
        frame.size += _leaf_size(key, value)
        if frame.size > self.pack_max:
            self._spill(len(self.stack) - 1)

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.spilled:
            return
        if not frame.kids:  # an empty object is no node
            return
        rich = frame.rich or array_indices(frame.kids) is not None
        if not self.stack:  # the walk's top: packed where it stands
            self.emit(self._packed(frame.parent, frame.key, frame.kids, frame.priority, rich))
            return
        parent = self.stack[-1]
        if parent.spilled:
            self.emit(self._packed(parent.path, frame.key, frame.kids, frame.priority, rich))
            return
        kids = frame.kids
        if frame.priority is not None:
            kids[PRIORITY] = frame.priority
            rich = True
        parent.kids[frame.key] = kids
        parent.rich = parent.rich or rich
        parent.size += frame.size
        if parent.size > self.pack_max:
            self._spill(len(self.stack) - 1)

    def _spill(self, i: int) -> None:
        """Frame ``i`` is too large to pack: it becomes an ``OBJECT`` row (its open
        ancestors too) and what it holds so far becomes rows."""
        frame = self.stack[i]
        if frame.spilled:
            return
        if i > 0:
            self._spill(i - 1)
        frame.spilled = True
        self.emit((frame.parent, key_bytes(frame.key) if frame.key else ROOT_KSORT, OBJECT, None, frame.priority))
        for key, child in frame.kids.items():
            self._emit_child(frame.path, key, child)
        frame.kids = {}

    def _emit_child(self, parent: str, key: str, child: Node) -> None:
        if not isinstance(child, dict):
            self.emit(leaf_row(parent, key_bytes(key), child, None))
        elif VALUE in child:
            self.emit(leaf_row(parent, key_bytes(key), child[VALUE], child.get(PRIORITY)))
        else:
            priority = child.pop(PRIORITY, None)
            self.emit(self._packed(parent, key, child, priority, _rich(child)))

    def _packed(self, parent: str, key: str, kids: dict[str, Node], priority: Any, rich: bool) -> Row:
        return (parent, key_bytes(key), PACKED_RICH if rich else PACKED, _ENCODE(sorted_children(kids)), priority)

    # a whole node
    def node(self, parent: str, key: str, node: Node, *, packable: bool = True) -> None:
        """Walk ``node`` stored under ``parent`` at ``key`` (``key`` empty: the root)."""
        if not isinstance(node, dict) or VALUE in node:
            value, priority = (node[VALUE], node.get(PRIORITY)) if isinstance(node, dict) else (node, None)
            if self.stack:
                self.leaf(key, value, priority)
            else:
                self.emit(leaf_row(parent, key_bytes(key) if key else ROOT_KSORT, value, priority))
            return
        self.open(parent, key, node.get(PRIORITY), packable=packable)
        for k, child in node.items():
            if k == PRIORITY:
                continue
            if isinstance(child, dict) and VALUE not in child:
                self.node(self.stack[-1].path, k, child)
            elif isinstance(child, dict):
                self.leaf(k, child[VALUE], child.get(PRIORITY))
            else:
                self.leaf(k, child, None)
        self.close()


def _rich(kids: dict[str, Node]) -> bool:
    """Whether REST would show ``kids`` differently (priorities, arrays), at any depth."""
    if array_indices(kids) is not None:
        return True
    for key, child in kids.items():
        if key == PRIORITY:
            return True
        if isinstance(child, dict) and (VALUE in child or _rich(child)):
            return True
    return False


def encode_kids(kids: dict[str, Node]) -> tuple[int, bytes]:
    """The kind and value of a packed row holding ``kids``."""
    return (PACKED_RICH if _rich(kids) else PACKED), _ENCODE(sorted_children(kids))


def packed_size(kids: dict[str, Node], limit: int = PACK_MAX) -> int:
    """Estimated stored size of ``kids`` (stops counting past ``limit``)."""
    total = 0
    for key, child in kids.items():
        if isinstance(child, dict) and VALUE not in child:
            total += len(key) + 4 + packed_size(child, limit - total)
        else:
            total += _leaf_size(key, child)
        if total > limit:
            return total
    return total
