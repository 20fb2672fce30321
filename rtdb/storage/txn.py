"""Node-level operations over one database connection inside a transaction (the row
layout is :mod:`rtdb.storage.rows`).

The SQL here is the one copy of the store's logic, for SQLite and PostgreSQL alike: it is
written in their common subset (``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``, row
values, ``?`` placeholders). What differs is a :class:`Dialect`: where the commit sequence
and the index version live, and how a written value is encoded. On PostgreSQL the tables are
views over shared tables scoped to one namespace, and each statement's text is translated once
(:mod:`rtdb.storage.pg_conn`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, cast

import msgspec

from rtdb.core.indexspec import VALUE, order_child
from rtdb.core.ordering import key_order, key_sort_bytes, value_sort_bytes
from rtdb.core.path import Path
from rtdb.core.query import Bound, QuerySpec
from rtdb.core.value import (
    PRIORITY,
    Node,
    array_indices,
    as_array,
    child_at,
    children,
    is_leaf,
    replace_at,
    to_plain,
)
from rtdb.storage.indexes import IndexDef, index_rows_for
from rtdb.storage.rows import (
    OBJECT,
    PACK_MAX,
    PACKED_KINDS,
    ROOT_KSORT,
    SEP,
    Packer,
    Row,
    below,
    child_path_key,
    encode_kids,
    key_bytes,
    key_of,
    leaf_value,
    locator,
    packed_size,
    path_key,
    row_node,
    unpacked,
)
from rtdb.storage.store import DisconnectRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    parent   TEXT NOT NULL,
    ksort    BLOB NOT NULL,
    kind     INTEGER NOT NULL,
    value,
    priority,
    PRIMARY KEY (parent, ksort)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS ydoc (path TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (path, n))
    WITHOUT ROWID;
"""
# ydoc (issue 16, rtdb/engine/ydoc.py): each Yjs document's stored updates by row number ``n``
# (from 1, only growing); after a compaction the first row holds the state of all rows up to it.

CHANGELOG_KEEP = 10_000
"""Recent commits kept in ``changelog`` (when a shared engine writes it) for processes that missed them."""

UNKNOWN: Any = object()

_ROWS_PER_INSERT = 100  # 500 parameters: under SQLite's limit of 32,766
_COLUMNS = "kind, value, priority"
_CHAINS_KEPT = 1024
_PREFETCH_PAIRS = 400  # row locators per prefetch statement: 800 parameters
_INDEX_ENTRY = ("INSERT INTO index_entries (ix, parent, key, vsort, ksort) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (ix, parent, key) DO UPDATE SET vsort = excluded.vsort, ksort = excluded.ksort")


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def insert_sql(n: int) -> str:
    """An INSERT of ``n`` rows of :data:`rows.Row` into ``nodes``."""
    return "INSERT INTO nodes (parent, ksort, kind, value, priority) VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * n)


@functools.lru_cache(maxsize=64)
def _chain_sql(n: int) -> str:
    """The rows of a path and its ancestors (at most one per depth), by depth."""
    return " UNION ALL ".join(
        f"SELECT {i}, {_COLUMNS} FROM nodes WHERE parent = ? AND ksort = ?" for i in range(n)
    )


def _chain_args(path: Path) -> list[Any]:
    args: list[Any] = ["", ROOT_KSORT]
    parent = ""
    for i, key in enumerate(path):
        args += (parent, key_bytes(key))
        parent = child_path_key(parent, key) if i else key
    return args


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What a :class:`Txn` needs of a connection: ``sqlite3.Connection``, or
    :class:`rtdb.storage.pg_conn.PgConn` over psycopg."""

    @property
    def total_changes(self) -> int: ...

    def execute(self, sql: str, args: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, args: Iterable[Any], /) -> Any: ...


class Dialect(Protocol):
    """What differs between the databases a :class:`Txn` runs on."""

    @property
    def cell(self) -> Callable[[Any], Any] | None:
        """Encodes a value written to a ``value`` or ``priority`` column (``None``: as it is)."""
        ...

    def data_version(self, conn: Connection) -> int:
        """Moves when another connection may have changed the declared indexes (or the seq)."""
        ...

    def stored_seq(self, conn: Connection) -> int: ...
    def save_seq(self, conn: Connection, seq: int) -> None: ...

    def take_disconnect_ops(self, conn: Connection, ns: str, session_id: str, taker: str, owner: str | None,
                            upto: int | None) -> list[DisconnectRow]:
        """Delete and return the session's stored onDisconnect operations of namespace ``ns``
        (see :meth:`Txn.take_disconnect_ops`)."""
        ...


class SqliteDialect:
    """SQLite: typeless columns take values as they are; the seq is a row of ``meta``."""

    cell: Callable[[Any], Any] | None = None

    def data_version(self, conn: Connection) -> int:
        version: int = conn.execute("PRAGMA data_version").fetchone()[0]
        return version

    def stored_seq(self, conn: Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
        return row[0] if row else 0

    def save_seq(self, conn: Connection, seq: int) -> None:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('seq', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (seq,),
        )

    def take_disconnect_ops(self, conn: Connection, ns: str, session_id: str, taker: str, owner: str | None,
                            upto: int | None) -> list[DisconnectRow]:
        """A SQLite server is one node: its onDisconnect operations live in its memory."""
        raise NotImplementedError("onDisconnect operations are stored only in PostgreSQL")


SQLITE = SqliteDialect()


def descendant_range(p: str) -> tuple[str, str]:
    """Exclusive bounds of the path keys strictly below ``p`` (``index_entries.parent``)."""
    if p == "":
        return ("", "\U0010ffff")
    return (p + SEP, p + "\x02")


class Txn:
    """Reads and writes nodes. Not thread-safe: one per connection."""

    def __init__(self, conn: Connection, *, writing: bool = False, dialect: Dialect = SQLITE) -> None:
        self.conn = conn
        self.dialect = dialect
        self._cell = dialect.cell
        self.writing = writing
        """The connection that writes the file (one per file): its reads may be kept until it writes."""
        self._log: list[tuple[int, bytes]] = []  # change-log entries of the group, written at commit
        self._pending: list[Row] = []  # rows decided by a Packer, inserted a statement's worth at a time
        self._chains: dict[Path, list[tuple[int, int, Any, Any]]] = {}  # read since this connection last wrote
        self.seq = 0
        self.indexes: list[IndexDef] = []
        self.data_version = -1
        self._has_docs: bool | None = None  # does the namespace hold a Yjs document? (asked once per group)
        self.load_shared_state()

    def forget(self) -> None:
        """The transaction was rolled back (wholly or to a savepoint): drop the
        change-log entries it has not written."""
        self._log.clear()
        self._pending.clear()
        self._chains.clear()
        self._has_docs = None

    def load_shared_state(self) -> None:
        """(Re-)read what this connection caches of the file: the commit sequence and the
        declared indexes. Another process sharing the file may have changed both."""
        self.data_version = self.dialect.data_version(self.conn)
        self.seq = self.dialect.stored_seq(self.conn)
        self.indexes = [
            IndexDef(ix, tuple(p for p in pattern.split("/") if p), tuple(c for c in child.split("/") if c))
            for ix, pattern, child in self.conn.execute("SELECT id, pattern, child FROM index_defs")
        ]

    def refresh_if_shared_changed(self) -> None:
        """At the start of a write transaction: reload the cached state if another
        connection committed since (``PRAGMA data_version`` moves only for others' commits)."""
        self._chains.clear()
        if self.dialect.data_version(self.conn) != self.data_version:
            self.load_shared_state()

    # -- sequence -------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def save_seq(self) -> None:
        self.dialect.save_seq(self.conn, self.seq)

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
            "INSERT INTO changelog (seq, data) VALUES (?, ?) ON CONFLICT (seq) DO UPDATE SET data = excluded.data",
            (last, msgspec.msgpack.encode(log)),
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
        cell = self._cell
        self.conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value if cell is None else cell(value)),
        )

    # -- Yjs documents (issue 16; rtdb/engine/ydoc.py) ------------------------------
    def ydoc_rows(self, key: str, after: int = 0) -> list[tuple[int, bytes]]:
        """A document's stored rows numbered above ``after``, in order."""
        cursor = self.conn.execute("SELECT n, data FROM ydoc WHERE path = ? AND n > ? ORDER BY n", (key, after))
        return [(n, bytes(data)) for n, data in cursor]

    def ydoc_last(self, key: str) -> int:
        row = self.conn.execute("SELECT max(n) FROM ydoc WHERE path = ?", (key,)).fetchone()
        return row[0] or 0 if row else 0

    def ydoc_append(self, key: str, n: int, data: bytes) -> None:
        self.conn.execute("INSERT INTO ydoc (path, n, data) VALUES (?, ?, ?)", (key, n, data))
        self._has_docs = True

    def ydoc_compact(self, key: str, upto: int, state: bytes) -> None:
        """Replace a document's rows up to ``upto`` with one row ``upto`` holding ``state``."""
        self.conn.execute("DELETE FROM ydoc WHERE path = ? AND n <= ?", (key, upto))
        self.ydoc_append(key, upto, state)

    def ydoc_near(self, path: Path, *, limit: int) -> list[str]:
        """Documents at ``path``, above it or below it (their keys). Every ordinary write asks
        this, and almost no namespace holds a document: the writing connection asks once per
        group whether there is any (the group holds the namespace's write lock, so the answer
        stays true until the group ends; :meth:`forget` runs at every group's start)."""
        if self.writing:
            if self._has_docs is None:
                self._has_docs = self.conn.execute("SELECT EXISTS (SELECT 1 FROM ydoc)").fetchone()[0] != 0
            if not self._has_docs:
                return []
        keys = ["/".join(path[:i]) for i in range(1, len(path) + 1)]
        low = "/".join(path) + "/" if path else ""
        high = low[:-1] + "0" if path else "\U0010ffff"
        marks = ", ".join("?" * len(keys)) or "NULL"
        sql = f"SELECT DISTINCT path FROM ydoc WHERE path IN ({marks}) OR (path >= ? AND path < ?) LIMIT {int(limit)}"
        return [row[0] for row in self.conn.execute(sql, (*keys, low, high))]

    def committed_seq(self) -> int:
        return self.dialect.stored_seq(self.conn)

    def take_disconnect_ops(self, ns: str, session_id: str, *, taker: str, owner: str | None = None,
                            upto: int | None = None) -> list[DisconnectRow]:
        """Delete the session's stored onDisconnect operations of namespace ``ns`` and return
        them in registration order, inside this transaction: they are gone if and only if it
        commits. Only while node ``taker`` holds a live lease; ``owner``: only those registered
        on that node, and only once its lease has run out (a sweep); ``upto``: only those
        registered up to that ``ord``. PostgreSQL only."""
        rows = self.dialect.take_disconnect_ops(self.conn, ns, session_id, taker, owner, upto)
        return sorted(rows, key=lambda row: row.ord)

    # -- locating rows ----------------------------------------------------------
    def _chain(self, path: Path) -> list[tuple[int, int, Any, Any]]:
        """``(depth, kind, value, priority)`` of the rows of ``path`` and its ancestors.
        Inside a write transaction the chains read since the last write are kept, so that
        a write reads its target's rows once (the command reads the old value, then sets)."""
        chain = self._chains.get(path)
        if chain is None:
            chain = self.conn.execute(_chain_sql(len(path) + 1), _chain_args(path)).fetchall()
            if self.writing:
                self._keep_chain(path, chain)
        return chain

    def _keep_chain(self, path: Path, chain: list[tuple[int, int, Any, Any]]) -> None:
        if len(self._chains) >= _CHAINS_KEPT:
            self._chains.clear()
        self._chains[path] = chain

    def prefetch(self, paths: list[Path]) -> None:
        """Read the row chains of ``paths`` (a group's write targets) in one statement, so the
        writes find them kept: where each read is a network round trip (PostgreSQL), a group
        then waits for one instead of one per write."""
        wanted = [p for p in dict.fromkeys(paths) if p not in self._chains]
        if not self.writing or len(wanted) < 2:
            return
        locators: dict[tuple[str, bytes], None] = {}
        for path in wanted:
            args = _chain_args(path)
            for i in range(0, len(args), 2):
                locators[(args[i], args[i + 1])] = None
        found: dict[tuple[str, bytes], tuple[int, Any, Any]] = {}
        pairs = list(locators)
        for start in range(0, len(pairs), _PREFETCH_PAIRS):
            part = pairs[start : start + _PREFETCH_PAIRS]
            flat: list[Any] = []
            for pair in part:
                flat += pair
            sql = ("SELECT parent, ksort, kind, value, priority FROM nodes WHERE (parent, ksort) IN (VALUES "
                   + ", ".join(["(?, ?)"] * len(part)) + ")")
            for parent, ksort, kind, value, priority in self.conn.execute(sql, flat):
                found[(parent, bytes(ksort))] = (kind, value, priority)
        for path in wanted:
            args = _chain_args(path)
            chain = []
            for depth in range(len(path) + 1):
                row = found.get((args[2 * depth], args[2 * depth + 1]))
                if row is not None:
                    chain.append((depth, *row))
            self._keep_chain(path, chain)

    def _forget_chains(self, path: Path, changed_from: int) -> None:
        """A write at ``path`` changed rows on its path from depth ``changed_from`` down (and
        below ``path``): a kept chain is stale if it shares such a row, that is if it follows
        ``path`` at least that deep."""
        if changed_from == 0:
            self._chains.clear()
            return
        for kept in list(self._chains):
            if kept[:changed_from] == path[:changed_from] and len(kept) >= changed_from:
                del self._chains[kept]

    def _holder(self, path: Path) -> tuple[int, int, Any, Any] | None:
        """The row holding the node at ``path``: its own, or the packed ancestor it is
        inside (``None``: nothing there, or only a leaf above it)."""
        depth = len(path)
        for row in self._chain(path):
            if row[0] == depth:
                return row
            if row[1] != OBJECT:
                return row if row[1] in PACKED_KINDS else None
        return None

    def _object_rows(self, p: str) -> Cursor:
        """The rows below the object row at path key ``p``, parents before children."""
        lo, hi = below(p)
        if hi is None:
            return cast(Cursor, self.conn.execute(
                "SELECT parent, ksort, kind, value, priority FROM nodes WHERE ksort != x'' ORDER BY parent, ksort"
            ))
        return cast(Cursor, self.conn.execute(
            "SELECT parent, ksort, kind, value, priority FROM nodes WHERE parent >= ? AND parent < ? "
            "ORDER BY parent, ksort",
            (lo, hi),
        ))

    def _child_rows(self, p: str, columns: str = "ksort, kind, value, priority") -> Cursor:
        # ksort > x'': the root's own row shares the parent "" with the root's children
        return cast(Cursor, self.conn.execute(
            f"SELECT {columns} FROM nodes WHERE parent = ? AND ksort > x'' ORDER BY ksort", (p,)))

    # -- reads ----------------------------------------------------------------
    def node(self, path: Path, *, plain: bool = False, raw: bool = False) -> Node:
        """The whole node at ``path`` (``None`` if absent); ``plain`` as a REST GET shows it.
        ``raw``: the caller only encodes the node as JSON, so plain packed subtrees may come
        as their stored JSON text (``msgspec.Raw``), never decoded."""
        held = self._holder(path)
        if held is None:
            return None
        depth, kind, value, priority = held
        if depth < len(path):  # inside a packed row
            sub = child_at(row_node(kind, value, priority), path[depth:])
            return to_plain(sub) if plain else sub
        if kind != OBJECT:
            return row_node(kind, value, priority, plain=plain, raw=raw)
        return self._assemble(path_key(path), priority, plain, raw)

    def _assemble(self, p: str, priority: Any, plain: bool, raw: bool = False) -> Node:
        top: dict[str, Any] = {PRIORITY: priority} if priority is not None and not plain else {}
        containers = {p: top}
        objects: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        for parent, ksort, kind, value, prio in self._object_rows(p):
            container = containers[parent]
            key = key_of(ksort)
            if kind == OBJECT:
                d: dict[str, Any] = {PRIORITY: prio} if prio is not None and not plain else {}
                container[key] = d
                containers[child_path_key(parent, key)] = d
                if plain:
                    objects.append((container, key, d))
            else:
                container[key] = row_node(kind, value, prio, plain=plain, raw=raw)
        if not plain:
            return top
        for container, key, d in reversed(objects):  # deepest first: children are plain before parents
            array = as_array(d)
            if array is not None:
                container[key] = array
        array = as_array(top)
        return top if array is None else array

    def exists(self, path: Path) -> bool:
        held = self._holder(path)
        if held is None:
            return False
        if held[0] == len(path):
            return True
        return child_at(unpacked(held[2]), path[held[0]:]) is not None

    def child_keys(self, path: Path, window: QuerySpec | None = None) -> tuple[Node, list[str]]:
        """The node itself if it is a leaf, else its child keys (grandchildren are not read);
        ``window`` (key order: a start bound and a limit) picks a page of them in SQL, so a page
        of a node with a million children reads a page's rows, not a million."""
        held = self._holder(path)
        if held is None:
            return None, []
        depth, kind, value, priority = held
        if depth == len(path) and kind == OBJECT:
            if window is not None:
                return None, self._keys_by_key(path_key(path), window)
            return None, [key_of(r[0]) for r in self._child_rows(path_key(path), "ksort")]
        node = self.node(path)
        if is_leaf(node):
            return node, []
        keys = sorted(children(node), key=key_order)
        return None, keys if window is None else window.select((k, None) for k in keys)

    def shallow(self, path: Path) -> Node:
        """The node at ``path`` with every child replaced by ``True`` (priority kept): what
        rules need to answer ``exists()``/``hasChildren()`` without reading a subtree."""
        held = self._holder(path)
        if held is None:
            return None
        depth, kind, value, priority = held
        if depth == len(path) and kind == OBJECT:
            out: dict[str, Any] = {key_of(k): True for (k,) in self._child_rows(path_key(path), "ksort")}
        else:
            node = self.node(path)
            if is_leaf(node):
                return node
            out = {k: True for k in children(node)}
            priority = node.get(PRIORITY) if isinstance(node, dict) else None
        if priority is not None:
            out[PRIORITY] = priority
        return out

    def query(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[tuple[str, Node]]:
        """The children of ``path`` selected by ``spec``, in query order, with their values."""
        keys = self.query_keys(path, spec, index)
        return [(k, self.node(path + (k,))) for k in keys]

    def query_keys(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[str]:
        p = path_key(path)
        held = self._holder(path)
        if held is None:
            return []
        if held[0] < len(path) or held[1] != OBJECT:  # a leaf or a packed node: small, in memory
            kids = children(self.node(path))
            return spec.select((k, spec.index_value(k, n)) for k, n in kids.items())
        if spec.order_by == "key":
            return self._keys_by_key(p, spec)
        if index is not None:
            return self._keys_by_index(p, spec, index)
        return spec.select(self._index_values(path, p, spec))

    def _index_values(self, path: Path, p: str, spec: QuerySpec) -> Iterator[tuple[str, Node]]:
        """``(key, index value)`` of every child, reading only what the order needs."""
        if spec.order_by == "priority":
            for ksort, priority in self._child_rows(p, "ksort, priority"):
                yield key_of(ksort), priority
        elif spec.order_by == "value":
            for ksort, kind, value in self._child_rows(p, "ksort, kind, value"):
                yield key_of(ksort), ({"": 1} if kind == OBJECT or kind in PACKED_KINDS else leaf_value(kind, value))
        else:
            for ksort, kind, value, priority in self._child_rows(p):
                key = key_of(ksort)
                if kind in PACKED_KINDS:
                    found = child_at(row_node(kind, value, priority), spec.child)
                elif kind == OBJECT:
                    found = self.node(path + (key,) + spec.child)
                else:
                    found = None
                yield key, _comparable(found) if found is not None else None

    def _keys_by_key(self, p: str, spec: QuerySpec) -> list[str]:
        # one lower bound on ksort: given two (x'' for the root's own row, and the start),
        # SQLite seeks with the first and filters with the second — a page half-way through a
        # million children scanned half a million rows
        start = key_bytes(str(spec.start.value)) if spec.start is not None else b""
        sql = ["SELECT ksort FROM nodes WHERE parent = ?"]
        args: list[Any] = [p]
        if spec.start is not None and start:
            sql.append("AND ksort >= ?" if spec.start.inclusive else "AND ksort > ?")
            args.append(start)
        else:
            sql.append("AND ksort > x''")
        if spec.end is not None:
            sql.append("AND ksort <= ?" if spec.end.inclusive else "AND ksort < ?")
            args.append(key_bytes(str(spec.end.value)))
        return [key_of(k) for k in self._ordered(sql, args, spec, "ksort")]

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

    def _ordered(self, sql: list[str], args: list[Any], spec: QuerySpec, order: str) -> list[Any]:
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
        child = order_child(spec)
        if child is None:
            return None
        self.refresh_if_shared_changed()  # indexes another connection declared since this one looked
        for index in self.indexes:
            if index.child == child and index.matches(path):
                return index
        return None

    def export_chunks(self, path: Path, *, keep_priorities: bool) -> Iterator[str]:
        """The node at ``path`` as JSON text in pieces, one stored object at a time
        (memory bounded by the widest object, not by the tree)."""
        held = self._holder(path)
        if held is None:
            yield "null"
        elif held[0] == len(path) and held[1] == OBJECT:
            yield from self._export(path_key(path), held[3], keep_priorities)
        else:
            yield _json(self.node(path, plain=not keep_priorities))

    def _export(self, p: str, priority: Any, keep: bool) -> Iterator[str]:
        rows = self._child_rows(p).fetchall()
        keys = [key_of(r[0]) for r in rows]
        indices = None if keep else array_indices(keys)
        yield "[" if indices is not None else "{"
        if indices is not None:
            by_index = dict(zip(indices, rows))
            for i in range(max(by_index) + 1):
                if i:
                    yield ","
                r = by_index.get(i)
                if r is None:
                    yield "null"
                else:
                    yield from self._export_row(child_path_key(p, str(i)), r, keep)
            yield "]"
            return
        first = True
        for key, r in zip(keys, rows):
            yield ("" if first else ",") + _json(key) + ":"
            first = False
            yield from self._export_row(child_path_key(p, key), r, keep)
        if keep and priority is not None:
            yield ("" if first else ",") + '".priority":' + _json(priority)
        yield "}"

    def _export_row(self, p: str, row: tuple[bytes, int, Any, Any], keep: bool) -> Iterator[str]:
        _, kind, value, priority = row
        if kind == OBJECT:
            yield from self._export(p, priority, keep)
        else:
            yield _json(row_node(kind, value, priority, plain=not keep))

    # -- writes ---------------------------------------------------------------
    def set(self, path: Path, node: Node, *, old: Node = UNKNOWN) -> None:
        """Replace the node at ``path`` (``None`` deletes), keeping the tree's invariants:
        no empty objects, every object's ancestors are objects, nothing stored below a
        packed row. (``old`` is accepted for callers that read it; the row chain, read
        once per write, tells all that is needed.)"""
        chain = self._chain(path)
        depth = len(path)
        for row in chain:
            if row[0] < depth and row[1] in PACKED_KINDS:
                changed_from = self._set_inside(path, row, node)
                break
        else:
            changed_from = self._replace(path, chain, node)
        self._forget_chains(path, changed_from)
        if self.indexes:
            self._reindex(path, node)

    def _replace(self, path: Path, chain: list[tuple[int, int, Any, Any]], node: Node) -> int:
        """Returns the smallest depth on ``path`` whose row it changed."""
        depth = len(path)
        own = chain[-1] if chain and chain[-1][0] == depth else None
        if own is not None:
            self.conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", locator(path))
            if own[1] == OBJECT:
                self._delete_below(path_key(path))
        if node is None:
            if own is not None and path:
                return min(depth, self._prune(path[:-1]))
            return depth
        if not path:
            self._write_node("", "", node, packable=False)
            return 0
        above = [r for r in chain if r[0] < depth]
        deepest = above[-1] if above else None
        if deepest is None:  # an empty database
            self.conn.execute(insert_sql(1), ("", ROOT_KSORT, OBJECT, None, None))
            top = changed_from = 0
        else:
            top = deepest[0]
            changed_from = top + 1  # the row written below it
            if deepest[1] != OBJECT:  # writing below a leaf makes it an object (priority kept)
                self.conn.execute(
                    "UPDATE nodes SET kind = ?, value = NULL WHERE parent = ? AND ksort = ?",
                    (OBJECT, *locator(path[:top])),
                )
                changed_from = top
        for key in reversed(path[top + 1 :]):  # the objects missing between them, built around the node
            node = {key: node}
        self._write_node(path_key(path[:top]), path[top], node)
        return changed_from

    def _write_node(self, parent: str, key: str, node: Node, *, packable: bool = True) -> None:
        Packer(self._collect).node(parent, key, node, packable=packable)
        if self._pending:
            self._flush_rows()

    def _collect(self, row: Row) -> None:
        self._pending.append(row)
        if len(self._pending) >= _ROWS_PER_INSERT:
            self._flush_rows()

    def _flush_rows(self) -> None:
        """Insert the decided rows in one statement: each SQLite call hands the GIL to the
        event loop's thread and must win it back; a large write never holds all its rows."""
        rows, self._pending = self._pending, []
        args: list[Any] = []
        cell = self._cell
        if cell is None:
            for row in rows:
                args += row
        else:
            for parent, ksort, kind, value, priority in rows:
                args += (parent, ksort, kind, cell(value), cell(priority))
        self.conn.execute(insert_sql(len(rows)), args)

    def _set_inside(self, path: Path, row: tuple[int, int, Any, Any], node: Node) -> int:
        """Write inside the packed row at depth ``row[0]``: rewrite it (small), or unpack it
        when it outgrows ``PACK_MAX``. Returns the smallest depth on ``path`` whose row changed."""
        depth, kind, value, priority = row
        holder = path[:depth]
        current = row_node(kind, value, priority)
        new = replace_at(current, path[depth:], node)
        if new is current:
            return len(path) + 1  # nothing changed
        if new is None:
            self.conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", locator(holder))
            return min(depth, self._prune(holder[:-1]))
        kids = children(new)
        new_priority = new.get(PRIORITY) if isinstance(new, dict) else None
        if packed_size(kids) <= PACK_MAX:
            new_kind, blob = encode_kids(kids)
            cell = self._cell
            if cell is not None:
                blob, new_priority = cell(blob), cell(new_priority)
            self.conn.execute(
                "UPDATE nodes SET kind = ?, value = ?, priority = ? WHERE parent = ? AND ksort = ?",
                (new_kind, blob, new_priority, *locator(holder)),
            )
            return depth
        self.conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", locator(holder))
        self._write_node(path_key(holder[:-1]), holder[-1], new)
        return depth

    def _delete_below(self, p: str) -> None:
        lo, hi = below(p)
        if hi is None:
            self.conn.execute("DELETE FROM nodes WHERE ksort != x''")
        else:
            self.conn.execute("DELETE FROM nodes WHERE parent >= ? AND parent < ?", (lo, hi))

    def _prune(self, path: Path) -> int:
        """Delete the objects at and above ``path`` that were left without children; the
        depth of the highest one deleted (``len(path) + 1``: none)."""
        for i in range(len(path), -1, -1):
            p = path_key(path[:i])
            if self.conn.execute("SELECT 1 FROM nodes WHERE parent = ? AND ksort != x'' LIMIT 1", (p,)).fetchone():
                return i + 1
            self.conn.execute("DELETE FROM nodes WHERE parent = ? AND ksort = ?", locator(path[:i]))
        return 0


    # -- indexes --------------------------------------------------------------
    def declare_index(self, pattern: Path, child: Path) -> IndexDef:
        """Create (and build from the stored data) an index, or return the existing one."""
        for index in self.indexes:
            if index.pattern == pattern and index.child == child:
                return index
        (ix,), = self.conn.execute(
            "INSERT INTO index_defs (pattern, child) VALUES (?, ?) RETURNING id", ("/".join(pattern), "/".join(child))
        ).fetchall()
        index = IndexDef(ix, pattern, child)
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
            _INDEX_ENTRY,
            ((index.id, path_key(parent), key, vsort, key_sort_bytes(key))
             for parent, key, vsort in index_rows_for(index, path, node)),
        )

    def _refresh_entry(self, index: IndexDef, parent: Path, key: str, child: Node = UNKNOWN) -> None:
        """Recompute one child's entry; ``child`` is its new node when the write was the child itself."""
        child_path = parent + (key,)
        if child is UNKNOWN:
            exists = self.exists(child_path)
            if exists:
                where = child_path if index.child == VALUE else child_path + index.child
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
            _INDEX_ENTRY,
            (index.id, path_key(parent), key, value_sort_bytes(_comparable(value)), key_sort_bytes(key)),
        )


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _comparable(node: Node) -> Node:
    """Objects all rank alike; don't carry a whole subtree into the sort encoding."""
    return {"": 1} if children(node) else node


def _bound_sort(bound: Bound, *, low: bool) -> tuple[bytes, bytes]:
    if bound.key is not None:
        ksort = key_sort_bytes(bound.key)
    else:
        ksort = b"" if low == bound.inclusive else b"\xff"
    return value_sort_bytes(bound.value), ksort


__all__ = ["SCHEMA", "SQLITE", "Connection", "Dialect", "SqliteDialect", "Txn", "PRIORITY"]
