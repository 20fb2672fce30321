"""The PostgreSQL backend: every namespace in shared tables of one database
(:mod:`rtdb.storage.pg_schema`), read and written by the same :class:`~rtdb.storage.txn.Txn`
as SQLite's (:mod:`rtdb.storage.pg_conn` adapts the connection), in the same thread model
(:class:`~rtdb.storage.group.ThreadedStore`): one writer thread per open namespace with its
own connection, doing group commit; reads on reader threads, each on a connection of the
backend's pool.

One total commit order per namespace, whichever processes write it: a group's transaction
(READ COMMITTED) first locks the namespace's row in ``rtdb_namespaces``
(``SELECT seq … FOR UPDATE``), so groups of one namespace commit one after the other and each
continues the ``seq`` the previous one stored; a waiting writer gives up after
``LOCK_TIMEOUT`` with :class:`~rtdb.core.errors.Unavailable`. Every group writes its
ChangeSets to ``rtdb_changelog`` (other processes fill gaps from it). Reads are REPEATABLE
READ transactions: the data and the ``seq`` they report come from one snapshot.

A lost or unreachable server makes reads and writes fail with ``Unavailable`` (a write is
acknowledged only after its COMMIT succeeded); the writer reconnects at its next group, the
pool replaces broken connections by itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rtdb.core.errors import Unavailable
from rtdb.storage.group import GroupCommit, StoreStats, ThreadedStore
from rtdb.storage.pg_conn import APPLICATION_NAME, POSTGRES, PgConn, configure, unavailable
from rtdb.storage.pg_schema import DATA_TABLES, cluster_id, ensure_schema, heads, namespace_id, with_schema
from rtdb.storage.sqlite import EmptyStore
from rtdb.storage.store import CompactReport
from rtdb.storage.txn import Txn

log = logging.getLogger("rtdb.storage")

T = TypeVar("T")

LOCK_TIMEOUT = "5s"
"""How long a group waits for another process's group of the same namespace."""
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 5.0
"""How long a read waits for a pooled connection (PostgreSQL down: then ``Unavailable``)."""
PAGE = 8192
WRITE_POOL_SIZE = 8
"""Write connections per backend (per node), shared by every namespace's groups."""


class PgGroupWriter(GroupCommit):
    """Group commit of one namespace. Each group borrows a connection of the backend's write
    pool (:meth:`PostgresBackend.writers`) from its ``BEGIN`` to its ``COMMIT``: a node holds
    as many write connections as it has groups under way, not one per open namespace. The
    connection learns the namespace in the group's first round trip (a transaction-local
    ``rtdb.ns``), so it goes back to the pool clean. :attr:`txn` keeps one :class:`PgConn`
    whose ``pg`` is the borrowed connection during a group and ``None`` between groups."""

    space = None  # nothing to do between groups: PostgreSQL's autovacuum gives space back
    prefetches = True  # every read is a round trip: a group's targets are read at once

    def __init__(self, backend: PostgresBackend, name: str, *, stats: StoreStats | None = None) -> None:
        self.backend = backend
        self.name = name
        self.stats = stats if stats is not None else StoreStats()
        self.txn: Txn | None = None
        self.ns_id: int | None = None

    def open(self) -> None:
        self.backend.ready()
        conn = PgConn(self.backend.borrow_writer())
        try:
            conn.pg.execute("BEGIN")
            ns_id = namespace_id(conn.pg, self.name, create=True)
            assert ns_id is not None
            conn.pg.execute("SELECT set_config('rtdb.ns', %s, true)", (str(ns_id),))
            self.ns_id = ns_id
            self.txn = Txn(conn, writing=True, dialect=POSTGRES)
            conn.pg.execute("COMMIT")
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        finally:
            self._give_back(conn)

    def close(self) -> None:
        self.txn = None

    def _give_back(self, conn: PgConn) -> None:
        pg, conn.pg = conn.pg, None  # type: ignore[assignment]  # between groups: no connection
        if pg is not None:
            self.backend.give_back_writer(pg)

    def end(self, txn: Txn) -> None:
        """The group is over (committed or rolled back): its connection goes back to the pool."""
        self._give_back(txn.conn)  # type: ignore[arg-type]

    def begin(self, txn: Txn) -> None:
        """``BEGIN``, then lock the namespace's row: this group commits after every group of
        it that held the lock before, and continues their ``seq`` (one round trip, on a
        connection borrowed for the group unless it already has one: a group run again with
        savepoints keeps its)."""
        conn: PgConn = txn.conn  # type: ignore[assignment]
        if conn.pg is None:
            conn.pg = self.backend.borrow_writer()
        txn.forget()
        try:
            cur = conn.pg.execute(
                f"BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; "
                f"SELECT set_config('rtdb.ns', '{int(self.ns_id or 0)}', true); "
                f"SELECT seq, index_version FROM rtdb_namespaces WHERE ns_id = {int(self.ns_id or 0)} FOR UPDATE",
                prepare=False,
            )
            while cur.nextset():
                pass
            row = cur.fetchone()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        if row is None:
            raise Unavailable(f"Namespace {self.name} was dropped")
        txn.seq = int(row[0])
        if int(row[1]) != txn.data_version:  # another connection declared an index
            txn.load_shared_state()

    def aborted(self, txn: Txn) -> bool:
        conn: PgConn = txn.conn  # type: ignore[assignment]
        return conn.aborted

    def pipelined(self, txn: Txn) -> AbstractContextManager[Any]:
        """The first pass in pipeline mode: a write's statements go out without waiting for
        their answers; only the reads (a write's row chain, the rules' reads) wait, so an op
        costs about one round trip instead of one per statement."""
        conn: PgConn = txn.conn  # type: ignore[assignment]
        return conn.pg.pipeline()

    def request_compact(self, token: Any) -> None:  # compaction runs beside the writer (PgStore.compact)
        raise NotImplementedError

    def maintain(self) -> list[tuple[Any, CompactReport]]:
        return []


class PgStore(ThreadedStore):
    """One namespace in PostgreSQL."""

    def __init__(self, backend: PostgresBackend, name: str, *, readers: int = 2) -> None:
        super().__init__(name, PgGroupWriter(backend, name), readers=readers)
        self.backend = backend
        self._local = threading.local()
        self._ns_id: int | None = None

    async def open(self) -> None:
        await self._start_writer(asyncio.get_running_loop())
        writer: PgGroupWriter = self._writer  # type: ignore[assignment]
        self._ns_id = writer.ns_id

    async def close(self) -> None:
        """Commit what was already submitted, then close. Later writes get :class:`Unavailable`."""
        await self._stop()

    def _read_in_thread(self, fn: Callable[[Txn], T]) -> T:
        txn: Txn | None = getattr(self._local, "txn", None)
        try:
            with self.backend.pool().connection(timeout=POOL_TIMEOUT_S) as pg:
                conn = PgConn(pg)
                pg.execute(f"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                           f"SELECT set_config('rtdb.ns', '{int(self._ns_id or 0)}', true)", prepare=False)
                try:
                    if txn is None:
                        txn = self._local.txn = Txn(conn, dialect=POSTGRES)
                    else:
                        txn.conn = conn
                    return fn(txn)
                finally:
                    if conn.in_transaction:
                        pg.execute("COMMIT")
        except PoolTimeout as exc:
            raise Unavailable("The database (PostgreSQL) is unavailable: no connection") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc

    async def compact(self) -> CompactReport:
        """``VACUUM`` the tables that hold the namespace's rows, beside the writer. They are shared
        by every namespace: the vacuum, and the sizes reported (``pg_total_relation_size``:
        table, indexes, TOAST), are table-wide, not this namespace's."""
        if self._closing:
            raise Unavailable("The database is not open")
        return await asyncio.to_thread(self.backend.vacuum)


class PostgresBackend:
    """Implements :class:`rtdb.storage.store.Backend` over one PostgreSQL database (``url``:
    a libpq connection URI; ``options=-csearch_path=…`` picks the schema, else it is ``rtdb``)."""

    logs_changes = True
    """Other processes may write the same namespaces: every commit goes to the change log."""

    def __init__(self, url: str, *, pool_size: int = 8, write_pool_size: int = WRITE_POOL_SIZE) -> None:
        self.url = with_schema(url)
        self.pool_size = pool_size
        self.write_pool_size = write_pool_size
        self._pool: ConnectionPool[Any] | None = None
        self._writers: ConnectionPool[Any] | None = None
        self._lock = threading.Lock()
        self._schema_ready = False

    # -- connections ----------------------------------------------------------
    def pool(self) -> ConnectionPool[Any]:
        """The connections of reads and of the backend's own queries (opened on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = self._open_pool(self.pool_size, "rtdb")
            return self._pool

    def writers(self) -> ConnectionPool[Any]:
        """The write connections every namespace's groups borrow (opened on first use)."""
        with self._lock:
            if self._writers is None:
                self._writers = self._open_pool(self.write_pool_size, "rtdb-writers")
            return self._writers

    def _open_pool(self, size: int, name: str) -> ConnectionPool[Any]:
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url, min_size=1, max_size=size, open=False, configure=configure,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME},
            name=name,
        )
        pool.open(wait=False)
        return pool

    def borrow_writer(self) -> psycopg.Connection[Any]:
        """A write connection for one group; ``Unavailable`` when none comes within
        ``POOL_TIMEOUT_S`` (PostgreSQL down, or every connection busy that long)."""
        try:
            return cast("psycopg.Connection[Any]", self.writers().getconn(timeout=POOL_TIMEOUT_S))
        except PoolTimeout as exc:
            raise Unavailable("The database (PostgreSQL) is unavailable: no write connection") from exc

    def give_back_writer(self, pg: psycopg.Connection[Any]) -> None:
        """Return a borrowed write connection (a broken one is replaced by the pool)."""
        pool = self._writers
        if pool is None:  # the backend closed meanwhile
            pg.close()
            return
        try:
            pool.putconn(pg)
        except Exception:  # noqa: BLE001 - a pool closing under us: the connection just goes
            pg.close()

    def ready(self) -> None:
        """Create the schema if it is missing (once per backend)."""
        if self._schema_ready:
            return
        self._query(ensure_schema)
        self._schema_ready = True

    def _query(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            with self.pool().connection(timeout=POOL_TIMEOUT_S) as pg:
                return fn(pg)
        except PoolTimeout as exc:
            raise Unavailable("The database (PostgreSQL) is unavailable: no connection") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc

    def cluster_id(self) -> str:
        """The identity of the cluster kept in this database (see :func:`~rtdb.storage.pg_schema.cluster_id`)."""
        self.ready()
        return self._query(cluster_id)

    def heads(self, names: list[str]) -> dict[str, tuple[str, int]]:
        """``(epoch, seq)`` of each of these namespaces that exists (one query; blocking)."""
        self.ready()
        return self._query(lambda pg: heads(pg, names))

    def check(self, timeout_s: float = 1.0) -> str | None:
        """``None`` if the server answers a query within about ``timeout_s``, else why not."""
        try:
            with self.pool().connection(timeout=timeout_s) as pg:
                pg.execute("SELECT 1")
        except PoolTimeout:
            return "PostgreSQL is unavailable: no connection"
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            return str(unavailable(exc).message)
        return None

    def close(self) -> None:
        with self._lock:
            for pool in (self._pool, self._writers):
                if pool is not None:
                    pool.close()
            self._pool = self._writers = None

    # -- Backend --------------------------------------------------------------
    def store(self, ns: str, *, writer: bool = True) -> PgStore:
        if not writer:
            raise ValueError("the PostgreSQL store has no read-only mode (--write-process)")
        return PgStore(self, ns)

    def exists(self, ns: str) -> bool:
        self.ready()
        return self._query(lambda pg: namespace_id(pg, ns, create=False)) is not None

    def namespaces(self) -> list[str]:
        self.ready()
        return self._query(lambda pg: [r[0] for r in pg.execute("SELECT name FROM rtdb_namespaces ORDER BY name")])

    def drop(self, ns: str) -> int | None:
        """Delete the namespace's rows in one transaction (after any group of it under way):
        an estimate of the bytes they took (``pg_column_size`` of the rows; the tables give the
        space to new rows after autovacuum, not to the file system), ``None`` if it did not exist."""
        self.ready()

        def drop(pg: psycopg.Connection[Any]) -> int | None:
            with pg.transaction():
                row = pg.execute("SELECT ns_id FROM rtdb_namespaces WHERE name = %s FOR UPDATE", (ns,)).fetchone()
                if row is None:
                    return None
                ns_id = row[0]
                freed = 0
                for table in DATA_TABLES:
                    size = pg.execute(f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
                                      "WHERE ns_id = %s", (ns_id,)).fetchone()
                    freed += int(size[0]) if size else 0
                    pg.execute(f"DELETE FROM {table} WHERE ns_id = %s", (ns_id,))
                pg.execute("DELETE FROM rtdb_namespaces WHERE ns_id = %s", (ns_id,))
                return freed

        return self._query(drop)

    def empty(self) -> EmptyStore:
        """A namespace that does not exist reads as SQLite's empty in-memory database: the same
        Txn over no rows answers as PostgreSQL would, without a round trip."""
        return EmptyStore()

    def vacuum(self) -> CompactReport:
        """``VACUUM`` the shared tables (see :meth:`PgStore.compact`)."""
        tables = ", ".join(DATA_TABLES)
        size_sql = "SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in DATA_TABLES)

        def vacuum(pg: psycopg.Connection[Any]) -> CompactReport:
            (before,) = pg.execute(size_sql).fetchone() or (0,)
            pg.execute(f"VACUUM {tables}")
            (after,) = pg.execute(size_sql).fetchone() or (0,)
            return CompactReport(int(before), int(after), max(0, (int(before) - int(after)) // PAGE),
                                 "postgresql", False)

        return self._query(vacuum)
