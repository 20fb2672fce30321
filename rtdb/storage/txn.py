"""Node-level operations over one SQLite connection inside a transaction."""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator
from typing import Any

import msgspec

from rtdb.core.ordering import key_sort_bytes, value_sort_bytes
from rtdb.core.path import Path
from rtdb.core.query import Bound, QuerySpec
from rtdb.core.value import PRIORITY, Node, children, int_key, is_leaf
from rtdb.storage.indexes import IndexDef, index_rows_for
from rtdb.storage.rows import (
    OBJECT,
    SEP,
    Row,
    descendant_range,
    from_rows,
    leaf_value,
    parent_key,
    iter_rows,
    path_key,
    row_node,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    path     TEXT PRIMARY KEY,
    parent   TEXT,
    key      TEXT NOT NULL,
    depth    INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    value,
    priority,
    ksort    BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nodes_children ON nodes (parent, ksort);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_defs (
    id       INTEGER PRIMARY KEY,
    pattern  TEXT NOT NULL,
    child    TEXT NOT NULL,
    UNIQUE (pattern, child)
);
CREATE TABLE IF NOT EXISTS index_entries (
    ix       INTEGER NOT NULL,
    parent   TEXT NOT NULL,
    key      TEXT NOT NULL,
    vsort    BLOB NOT NULL,
    ksort    BLOB NOT NULL,
    PRIMARY KEY (ix, parent, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS index_entries_order ON index_entries (ix, parent, vsort, ksort);
CREATE TABLE IF NOT EXISTS changelog (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

CHANGELOG_KEEP = 10_000
"""Recent commits kept in ``changelog`` (when a shared engine writes it) for processes that missed them."""

UNKNOWN: Any = object()

_INSERT = (
    "INSERT INTO nodes (path, parent, key, depth, kind, value, priority, ksort) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


_ROWS_PER_INSERT = 100  # 800 parameters: under SQLite's limit of 32,766


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(n: int) -> str:
    return _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?)" * (n - 1)


class Txn:
    """Reads and writes nodes. Not thread-safe: one per connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._objects: set[str] = set()  # path keys known to hold objects in this transaction
        self._log: list[tuple[int, bytes]] = []  # change-log entries of the group, written at commit
        self.seq = 0
        self.indexes: list[IndexDef] = []
        self.data_version = -1
        self.load_shared_state()

    def forget(self) -> None:
        """The transaction was rolled back (wholly or to a savepoint): drop what it cached
        and the change-log entries it has not written."""
        self._objects.clear()
        self._log.clear()

    def load_shared_state(self) -> None:
        """(Re-)read what this connection caches of the file: the commit sequence and the
        declared indexes. Another process sharing the file may have changed both."""
        self.data_version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
        self.seq = row[0] if row else 0
        self.indexes = [
            IndexDef(ix, tuple(p for p in pattern.split("/") if p), tuple(c for c in child.split("/") if c))
            for ix, pattern, child in self.conn.execute("SELECT id, pattern, child FROM index_defs")
        ]

    def refresh_if_shared_changed(self) -> None:
        """At the start of a write transaction: reload the cached state if another
        connection committed since (``PRAGMA data_version`` moves only for others' commits)."""
        if self.conn.execute("PRAGMA data_version").fetchone()[0] != self.data_version:
            self.load_shared_state()

    # -- sequence -------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def save_seq(self) -> None:
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES ('seq', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (self.seq,),
        )

    def log_change(self, seq: int, data: bytes) -> None:
        """Keep the encoded ChangeSet of commit ``seq`` (for processes whose broker missed it).
        A group's entries are written as one row, keyed by its last seq, by :meth:`flush_log`."""
        self._log.append((seq, data))

    def flush_log(self) -> None:
        """Write the entries logged since the last flush (before the group commits)."""
        log = self._log
        if not log:
            return
        first, last = log[0][0], log[-1][0]
        self.conn.execute(
            "INSERT OR REPLACE INTO changelog (seq, data) VALUES (?, ?)", (last, msgspec.msgpack.encode(log))
        )
        log.clear()
        if (first - 1) // 1000 != last // 1000:  # crossed a thousand: drop what is too old to keep
            self.conn.execute("DELETE FROM changelog WHERE seq <= ?", (last - CHANGELOG_KEEP,))

    def changes_after(self, seq: int, limit: int = 1000) -> list[bytes]:
        """Encoded ChangeSets logged after ``seq``, oldest first (up to about ``limit``)."""
        out: list[bytes] = []
        for (data,) in self.conn.execute(
            "SELECT data FROM changelog WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ):
            out += [entry for s, entry in msgspec.msgpack.decode(data, type=list[tuple[int, bytes]]) if s > seq]
            if len(out) >= limit:
                break
        return out

    def meta(self, name: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def committed_seq(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
        return row[0] if row else 0

    # -- reads ----------------------------------------------------------------
    def node(self, path: Path, *, plain: bool = False) -> Node:
        """The whole node at ``path`` (``None`` if absent); ``plain`` as a REST GET shows it."""
        p = path_key(path)
        top = self.conn.execute("SELECT kind, value, priority FROM nodes WHERE path = ?", (p,)).fetchone()
        if top is None or top[0] != OBJECT:
            return from_rows(len(path), top, (), plain=plain)
        lo, hi = descendant_range(p)
        rows = self.conn.execute(
            "SELECT depth, key, kind, value, priority FROM nodes WHERE path > ? AND path < ? ORDER BY path",
            (lo, hi),
        )
        return from_rows(len(path), top, rows, plain=plain)

    def exists(self, path: Path) -> bool:
        return self.conn.execute("SELECT 1 FROM nodes WHERE path = ?", (path_key(path),)).fetchone() is not None

    def child_keys(self, path: Path) -> tuple[Node, list[str]]:
        """The node itself if it is a leaf, else its child keys (grandchildren are not read)."""
        p = path_key(path)
        top = self.conn.execute("SELECT kind, value, priority FROM nodes WHERE path = ?", (p,)).fetchone()
        if top is None:
            return None, []
        if top[0] != OBJECT:
            return row_node(*top), []
        keys = [r[0] for r in self.conn.execute("SELECT key FROM nodes WHERE parent = ? ORDER BY ksort", (p,))]
        return None, keys

    def shallow(self, path: Path) -> Node:
        """The node at ``path`` with every child replaced by ``True`` (priority kept): what
        rules need to answer ``exists()``/``hasChildren()`` without reading a subtree."""
        p = path_key(path)
        top = self.conn.execute("SELECT kind, value, priority FROM nodes WHERE path = ?", (p,)).fetchone()
        if top is None or top[0] != OBJECT:
            return from_rows(len(path), top, ())
        out: dict[str, Any] = {k: True for (k,) in self.conn.execute("SELECT key FROM nodes WHERE parent = ?", (p,))}
        if top[2] is not None:
            out[PRIORITY] = top[2]
        return out

    def query(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[tuple[str, Node]]:
        """The children of ``path`` selected by ``spec``, in query order, with their values."""
        keys = self.query_keys(path, spec, index)
        return [(k, self.node(path + (k,))) for k in keys]

    def query_keys(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[str]:
        p = path_key(path)
        if spec.order_by == "key":
            return self._keys_by_key(p, spec)
        if index is not None:
            return self._keys_by_index(p, spec, index)
        return spec.select(self._index_values(p, spec))

    def _index_values(self, p: str, spec: QuerySpec) -> Iterator[tuple[str, Node]]:
        """``(key, index value)`` of every child, reading only what the order needs."""
        if spec.order_by == "priority":
            for key, priority in self.conn.execute("SELECT key, priority FROM nodes WHERE parent = ?", (p,)):
                yield key, priority
        elif spec.order_by == "value":
            for key, kind, value in self.conn.execute("SELECT key, kind, value FROM nodes WHERE parent = ?", (p,)):
                yield key, ({"": 1} if kind == OBJECT else leaf_value(kind, value))
        else:
            suffix = SEP + SEP.join(spec.child)
            for key, kind, value in self.conn.execute(
                "SELECT c.key, v.kind, v.value FROM nodes AS c LEFT JOIN nodes AS v ON v.path = c.path || ? "
                "WHERE c.parent = ?",
                (suffix, p),
            ):
                yield key, (None if kind is None else {"": 1} if kind == OBJECT else leaf_value(kind, value))

    def _keys_by_key(self, p: str, spec: QuerySpec) -> list[str]:
        sql = ["SELECT key FROM nodes WHERE parent = ?"]
        args: list[Any] = [p]
        if spec.start is not None:
            sql.append("AND ksort >= ?" if spec.start.inclusive else "AND ksort > ?")
            args.append(key_sort_bytes(str(spec.start.value)))
        if spec.end is not None:
            sql.append("AND ksort <= ?" if spec.end.inclusive else "AND ksort < ?")
            args.append(key_sort_bytes(str(spec.end.value)))
        return self._ordered(sql, args, spec, "ksort")

    def _keys_by_index(self, p: str, spec: QuerySpec, index: IndexDef) -> list[str]:
        sql = ["SELECT key FROM index_entries WHERE ix = ? AND parent = ?"]
        args: list[Any] = [index.id, p]
        if spec.start is not None:
            sql.append("AND (vsort, ksort) >= (?, ?)" if spec.start.inclusive else "AND (vsort, ksort) > (?, ?)")
            args += _bound_sort(spec.start, low=True)
        if spec.end is not None:
            sql.append("AND (vsort, ksort) <= (?, ?)" if spec.end.inclusive else "AND (vsort, ksort) < (?, ?)")
            args += _bound_sort(spec.end, low=False)
        return self._ordered(sql, args, spec, "vsort, ksort")

    def _ordered(self, sql: list[str], args: list[Any], spec: QuerySpec, order: str) -> list[str]:
        if spec.limit is not None and spec.from_last:
            desc = ", ".join(c.strip() + " DESC" for c in order.split(","))
            sql.append(f"ORDER BY {desc} LIMIT ?")
            args.append(spec.limit)
            return [r[0] for r in self.conn.execute(" ".join(sql), args)][::-1]
        sql.append(f"ORDER BY {order}")
        if spec.limit is not None:
            sql.append("LIMIT ?")
            args.append(spec.limit)
        return [r[0] for r in self.conn.execute(" ".join(sql), args)]

    def find_index(self, path: Path, spec: QuerySpec) -> IndexDef | None:
        if spec.order_by not in ("child", "value"):
            return None
        self.refresh_if_shared_changed()  # indexes another connection declared since this one looked
        child = (".value",) if spec.order_by == "value" else spec.child
        for index in self.indexes:
            if index.child == child and index.matches(path):
                return index
        return None

    def export_chunks(self, path: Path, *, keep_priorities: bool) -> Iterator[str]:
        """The node at ``path`` as JSON text in pieces, one stored object at a time
        (memory bounded by the widest object, not by the tree)."""
        p = path_key(path)
        top = self.conn.execute("SELECT kind, value, priority FROM nodes WHERE path = ?", (p,)).fetchone()
        if top is None:
            yield "null"
            return
        yield from self._export(p, top[0], top[1], top[2], keep_priorities)

    def _export(self, p: str, kind: int, value: Any, priority: Any, keep: bool) -> Iterator[str]:
        if kind != OBJECT:
            leaf = leaf_value(kind, value)
            yield _json({".value": leaf, ".priority": priority} if keep and priority is not None else leaf)
            return
        rows = self.conn.execute(
            "SELECT key, kind, value, priority FROM nodes WHERE parent = ? ORDER BY ksort", (p,)
        ).fetchall()
        as_array = not keep and _is_array([r[0] for r in rows])
        yield "[" if as_array else "{"
        prefix = p + SEP if p else ""
        if as_array:
            by_index = {int(r[0]): r for r in rows}
            for i in range(max(by_index) + 1):
                if i:
                    yield ","
                r = by_index.get(i)
                if r is None:
                    yield "null"
                else:
                    yield from self._export(prefix + r[0], r[1], r[2], r[3], keep)
            yield "]"
            return
        first = True
        for key, ckind, cvalue, cpriority in rows:
            yield ("" if first else ",") + _json(key) + ":"
            first = False
            yield from self._export(prefix + key, ckind, cvalue, cpriority, keep)
        if keep and priority is not None:
            yield ("" if first else ",") + '".priority":' + _json(priority)
        yield "}"

    # -- writes ---------------------------------------------------------------
    def set(self, path: Path, node: Node, *, old: Node = UNKNOWN) -> None:
        """Replace the node at ``path`` (``None`` deletes), keeping the tree's invariants:
        no empty objects, every object's ancestors are objects. ``old``, when the caller
        has read it, spares the deletes that cannot match anything."""
        p = path_key(path)
        if old is not None:
            self._objects.clear()  # what was at and below ``path`` goes
            self.conn.execute("DELETE FROM nodes WHERE path = ?", (p,))
        if old is UNKNOWN or not is_leaf(old):
            lo, hi = descendant_range(p)
            self.conn.execute("DELETE FROM nodes WHERE path > ? AND path < ?", (lo, hi))
        if node is None:
            self._prune(path)
        else:
            self._insert(iter_rows(path, node))
            self._ensure_ancestors(path)
        if self.indexes:
            self._reindex(path, node)

    def _insert(self, rows: Iterator[Row]) -> None:
        """Insert rows with as few statements as possible: each SQLite call hands the GIL
        to the event loop's thread and must win it back. Rows are made as they are
        inserted, a statement's worth at a time, so a large write never holds them all."""
        while chunk := list(itertools.islice(rows, _ROWS_PER_INSERT)):
            self.conn.execute(_insert_sql(len(chunk)), list(itertools.chain.from_iterable(chunk)))

    def set_priority(self, path: Path, priority: Any) -> None:
        self.conn.execute("UPDATE nodes SET priority = ? WHERE path = ?", (priority, path_key(path)))

    def _ensure_ancestors(self, path: Path) -> None:
        objects = self._objects
        for i in range(len(path) - 1, -1, -1):
            a = path[:i]
            p = path_key(a)
            if p in objects:
                return
            row = self.conn.execute("SELECT kind FROM nodes WHERE path = ?", (p,)).fetchone()
            if row is not None and row[0] == OBJECT:
                objects.add(p)
                return
            if row is None:
                key = a[-1] if a else ""
                self.conn.execute(_INSERT, (p, parent_key(a), key, len(a), OBJECT, None, None, key_sort_bytes(key)))
            else:
                self.conn.execute("UPDATE nodes SET kind = ?, value = NULL WHERE path = ?", (OBJECT, p))
            objects.add(p)

    def _prune(self, path: Path) -> None:
        self._objects.clear()
        for i in range(len(path) - 1, -1, -1):
            p = path_key(path[:i])
            if self.conn.execute("SELECT 1 FROM nodes WHERE parent = ? LIMIT 1", (p,)).fetchone():
                return
            self.conn.execute("DELETE FROM nodes WHERE path = ?", (p,))

    # -- indexes --------------------------------------------------------------
    def declare_index(self, pattern: Path, child: Path) -> IndexDef:
        """Create (and build from the stored data) an index, or return the existing one."""
        for index in self.indexes:
            if index.pattern == pattern and index.child == child:
                return index
        cur = self.conn.execute(
            "INSERT INTO index_defs (pattern, child) VALUES (?, ?)", ("/".join(pattern), "/".join(child))
        )
        assert cur.lastrowid is not None
        index = IndexDef(cur.lastrowid, pattern, child)
        self.indexes.append(index)
        self._build_index(index, (), self.node(()))
        return index

    def _reindex(self, path: Path, node: Node) -> None:
        for index in self.indexes:
            depth = len(index.pattern)
            if len(path) > depth:
                if index.matches(path[:depth]):
                    known = UNKNOWN if len(path) > depth + 1 else node  # the write is the child itself
                    self._refresh_entry(index, path[:depth], path[depth], known)
            elif index.matches_prefix(path):
                p = path_key(path)
                lo, hi = descendant_range(p)
                self.conn.execute("DELETE FROM index_entries WHERE ix = ? AND parent = ?", (index.id, p))
                self.conn.execute(
                    "DELETE FROM index_entries WHERE ix = ? AND parent > ? AND parent < ?", (index.id, lo, hi)
                )
                self._build_index(index, path, node)

    def _build_index(self, index: IndexDef, path: Path, node: Node) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO index_entries (ix, parent, key, vsort, ksort) VALUES (?, ?, ?, ?, ?)",
            ((index.id, path_key(parent), key, vsort, key_sort_bytes(key))
             for parent, key, vsort in index_rows_for(index, path, node)),
        )

    def _refresh_entry(self, index: IndexDef, parent: Path, key: str, child: Node = UNKNOWN) -> None:
        """Recompute one child's entry; ``child`` is its new node when the write was the child itself."""
        child_path = parent + (key,)
        if child is UNKNOWN:
            exists = self.exists(child_path)
            if exists:
                where = child_path if index.child == (".value",) else child_path + index.child
                value = self.shallow(where)
        else:
            exists = child is not None
            value = index.value_of(child) if exists else None
        if not exists:
            self.conn.execute(
                "DELETE FROM index_entries WHERE ix = ? AND parent = ? AND key = ?", (index.id, path_key(parent), key)
            )
            return
        self.conn.execute(
            "INSERT OR REPLACE INTO index_entries (ix, parent, key, vsort, ksort) VALUES (?, ?, ?, ?, ?)",
            (index.id, path_key(parent), key, value_sort_bytes(_comparable(value)), key_sort_bytes(key)),
        )


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _is_array(keys: list[str]) -> bool:
    """Firebase's heuristic: all keys non-negative integers, more than half of 0..max present."""
    numbers = [int_key(k) for k in keys]
    if not numbers or any(n is None or n < 0 for n in numbers):
        return False
    return max(n for n in numbers if n is not None) < 2 * len(numbers)


def _comparable(node: Node) -> Node:
    """Objects all rank alike; don't carry a whole subtree into the sort encoding."""
    return {"": 1} if children(node) else node


def _bound_sort(bound: Bound, *, low: bool) -> tuple[bytes, bytes]:
    if bound.key is not None:
        ksort = key_sort_bytes(bound.key)
    else:
        ksort = b"" if low == bound.inclusive else b"\xff"
    return value_sort_bytes(bound.value), ksort


__all__ = ["SCHEMA", "Txn", "PRIORITY"]
