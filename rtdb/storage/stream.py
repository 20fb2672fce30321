"""Writing a large JSON document at a path in one transaction, its tree never held whole.

:func:`write_document` does what ``txn.set(base, node)`` does with the document's
normalized, resolved node — the same rows, the same index entries, server values
resolved against the value it replaces — with memory bounded by the document's bytes:
:func:`rtdb.core.document.walk` validates it piece by piece and hands over runs of
children, a :class:`~rows.Packer` decides their rows from that depth-first walk, and the
rows are inserted as they are decided. An error anywhere (a key the database refuses,
JSON no decoder accepts) raises inside the caller's transaction, which then writes
nothing.

How the value at ``base`` is replaced, once the walk has decided its first rows (a
document whose top turns out small after all — it normalizes to one packed row or to
nothing — goes through ``txn.set`` instead, with that small node):

1. ``txn.set(base, PLACEHOLDER)``: an object too large to pack, so that ``set`` removes
   the old value (its rows, its index entries), makes every object above ``base`` an
   object row (creating the missing ones, unpacking a packed one, turning a leaf into an
   object and keeping its priority), exactly as it does for any large value;
2. the placeholder's two rows and its index entries are deleted;
3. the walk's rows are inserted, and the index entries of what lies below ``base``
   (computed from the runs as ``Txn.set`` computes them from the whole node);
4. the entries that depend on a large object's content (the entry of ``base`` in an
   index above it, of a large child in an index at its parent) are read back once the
   rows are written, as ``Txn.set`` reads back those of a write below an indexed child.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rtdb.core.document import SMALL, Json, walk
from rtdb.core.indexspec import VALUE
from rtdb.core.ordering import key_sort_bytes, value_sort_bytes
from rtdb.core.path import Path
from rtdb.core.servervalue import resolve
from rtdb.core.value import Node, children
from rtdb.storage import store
from rtdb.storage.indexes import IndexDef, index_rows_for
from rtdb.storage.rows import OBJECT, PACK_MAX, Packer, Row, key_bytes, locator, path_key, row_node
from rtdb.storage.txn import Txn, insert_sql

PLACEHOLDER = {"import": "x" * PACK_MAX}
"""Written at ``base`` before the walk's rows: too large to pack (see the module's docstring)."""

_ROWS_PER_INSERT = 100
_ENTRIES_PER_INSERT = 1000
_SERVER_VALUE_KEY = re.compile(rb'"(?:\.|\\u002[eE])(?:s|\\u0073)(?:v|\\u0076)"')  # ".sv", escaped or not
_UPSERT_ENTRY = ("INSERT INTO index_entries (ix, parent, key, vsort, ksort) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (ix, parent, key) DO UPDATE SET vsort = excluded.vsort, ksort = excluded.ksort")


def write_document(txn: store.Txn, base: Path, document: Json, now_ms: int, *, small: int = SMALL,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """Replace the value at ``base`` with ``document`` (checked by :func:`~rtdb.core.document.check_json`),
    server values resolved at ``now_ms``; the leaves written. ``progress`` as for
    :func:`~rtdb.core.document.walk`. Raises what ``normalize`` raises for the whole document."""
    if not isinstance(txn, Txn):  # a store of another kind: the whole node, through the seam
        whole = _Whole()
        leaves = walk(document, base, whole, finish=lambda at, node: resolve(node, at, now_ms, txn.node),
                      small=len(document))
        txn.set(base, whole.node)
        return leaves
    current = _old_values(txn, base, document, small)
    rows = _Rows(txn, base)
    leaves = walk(document, base, rows, finish=lambda at, node: resolve(node, at, now_ms, current), small=small,
                  progress=progress)
    rows.finish()
    return leaves


def _old_values(txn: Txn, base: Path, document: Json, small: int) -> Callable[[Path], Node]:
    """What each server value is resolved against (an ``increment`` adds to the value it replaces).
    The old value at ``base`` is gone once the first rows are written: when there is one and the
    document may hold server values, a first walk that writes nothing reads what they replace."""
    if not txn.exists(base) or _SERVER_VALUE_KEY.search(document) is None:
        return lambda at: None
    old: dict[Path, Node] = {}

    def read(at: Path) -> Node:
        old[at] = txn.node(at)
        return old[at]

    walk(document, base, _Whole(), finish=lambda at, node: resolve(node, at, 0, read), small=small)
    return old.get


class _Whole:
    """A sink that keeps only a document that comes whole."""

    node: Node = None

    def whole(self, node: Node) -> None:
        self.node = node

    def open(self, path: Path, priority: Any) -> None:
        pass

    def children(self, path: Path, kids: dict[str, Node]) -> None:
        pass

    def close(self, path: Path) -> None:
        pass


class _Rows:
    """The sink that writes: rows from a :class:`Packer`, index entries beside them."""

    def __init__(self, txn: Txn, base: Path) -> None:
        self.txn = txn
        self.base = base
        self.packer = Packer(self._emit)
        self.pending: list[Row] = []
        self.rows = 0  # decided so far
        self.replaced = False  # steps 1–2 of the module's docstring are done
        self.whole_node: Node = _NOT_WHOLE
        self.indexes = [ix for ix in txn.indexes if len(base) <= len(ix.pattern) and ix.matches_prefix(base)]
        """The indexes with entries below ``base``."""
        self.entries: list[tuple[int, str, str, bytes, bytes]] = []
        self.stale: set[tuple[IndexDef, Path, str]] = {
            (ix, base[: len(ix.pattern)], base[len(ix.pattern)])
            for ix in txn.indexes if len(base) > len(ix.pattern) and ix.matches(base[: len(ix.pattern)])
        }
        """Entries (index, parent, key) to read back once the rows are written."""

    # the walk
    def whole(self, node: Node) -> None:
        self.whole_node = node

    def open(self, path: Path, priority: Any) -> None:
        if not self.packer.stack:  # the document's top, at base (the root is never packed)
            self.packer.open(path_key(path[:-1]), path[-1] if path else "", priority, packable=bool(path))
            return
        self.packer.open(self.packer.stack[-1].path, path[-1], priority)
        for ix in self.indexes:
            depth = len(ix.pattern)
            if len(path) == depth + 1 and ix.matches(path[:depth]):
                self.stale.add((ix, path[:depth], path[depth]))

    def children(self, path: Path, kids: dict[str, Node]) -> None:
        for ix in self.indexes:
            if len(path) <= len(ix.pattern) and ix.matches_prefix(path):
                self.entries += ((ix.id, path_key(at), key, vsort, key_sort_bytes(key))
                                 for at, key, vsort in index_rows_for(ix, path, kids))
        if len(self.entries) >= _ENTRIES_PER_INSERT and self.replaced:
            self._insert_entries()
        parent = self.packer.stack[-1].path
        for key, child in kids.items():
            self.packer.node(parent, key, child)

    def close(self, path: Path) -> None:
        self.packer.close()

    # the rows
    def _emit(self, row: Row) -> None:
        self.pending.append(row)
        self.rows += 1
        if len(self.pending) >= _ROWS_PER_INSERT:
            self._insert_rows()

    def _insert_rows(self) -> None:
        if not self.replaced:
            self._replace()
        args: list[Any] = []
        cell = self.txn.dialect.cell  # how the database takes a value or priority (as it is, on SQLite)
        if cell is None:
            for row in self.pending:
                args += row
        else:
            for parent, ksort, kind, value, priority in self.pending:
                args += (parent, ksort, kind, cell(value), cell(priority))
        self.txn.conn.execute(insert_sql(len(self.pending)), args)
        self.pending = []

    def _replace(self) -> None:
        """Steps 1–2 of the module's docstring."""
        conn = self.txn.conn
        self.txn.set(self.base, dict(PLACEHOLDER))
        (key,) = PLACEHOLDER
        conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", locator(self.base))
        conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", (path_key(self.base), key_bytes(key)))
        conn.execute("DELETE FROM index_entries WHERE parent = ? AND key = ?", (path_key(self.base), key))
        self.replaced = True

    def _insert_entries(self) -> None:
        self.txn.conn.executemany(_UPSERT_ENTRY, self.entries)
        self.entries = []

    def finish(self) -> None:
        """After the walk: write what is left, or the whole document if it came whole or stayed small."""
        if self.whole_node is not _NOT_WHOLE:
            self.txn.set(self.base, self.whole_node)
            return
        if not self.replaced and self.rows <= 1:  # the top stayed small: its packed row, or nothing
            kind = self.pending[0][2] if self.pending else OBJECT  # an OBJECT row alone: the root, empty
            self.txn.set(self.base, None if kind == OBJECT else row_node(*self.pending[0][2:]))
            return
        if self.pending:
            self._insert_rows()
        if self.entries:
            self._insert_entries()
        for ix, parent, key in self.stale:
            self._refresh(ix, parent, key)

    def _refresh(self, ix: IndexDef, parent: Path, key: str) -> None:
        """The entry of ``key`` under ``parent``, read back from the rows (what ``Txn.set`` does for a
        write below an indexed child)."""
        at = parent + (key,)
        if not self.txn.exists(at):
            self.txn.conn.execute("DELETE FROM index_entries WHERE ix = ? AND parent = ? AND key = ?",
                                  (ix.id, path_key(parent), key))
            return
        value = self.txn.shallow(at if ix.child == VALUE else at + ix.child)
        self.txn.conn.execute(_UPSERT_ENTRY, (ix.id, path_key(parent), key,
                                              value_sort_bytes({"": 1} if children(value) else value),
                                              key_sort_bytes(key)))


_NOT_WHOLE: Any = object()
