"""The cluster's tables in PostgreSQL: node leases and durable onDisconnect operations.

* ``rtdb_cluster_nodes(node_id, address, lease_until)``: one row per live node incarnation.
  A node renews its lease by PostgreSQL's clock (``now()``), so node clocks do not matter;
  a lease that has run out is never renewed (the node must register again under a new id).
  Sweepers run the operations of nodes without a live lease (:meth:`ClusterDb.orphans`) and
  then delete the rows of expired nodes that have none left.
* ``rtdb_ondisconnect(session_id, ord, node_id, ns, kind, path, data, caller)``: the
  onDisconnect operations registered by each session, in registration order (``ord``).
  Whoever deletes a row runs it, and in the same transaction: the ``DELETE … RETURNING`` is
  made by the namespace's writer, inside the write group that runs the operations
  (:meth:`rtdb.storage.txn.Txn.take_disconnect_ops`), so two takers never both get a row
  and a row is gone only once its writes committed.

A registration lands only while its node holds a live lease (the ``INSERT`` reads the node's
row ``FOR SHARE``): nothing is added to a node whose lease ran out. Taking needs the taker's
lease too: a node that lost it leaves its sessions to the sweepers.

The tables are created beside :mod:`rtdb.storage.pg_schema`'s (first schema of the
``search_path``) under the same advisory lock. Asynchronous psycopg connections: the
heartbeat must not wait behind the store's threads, and a query that hangs is cancelled
by its timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from rtdb.core.errors import Unavailable
from rtdb.storage.pg_conn import APPLICATION_NAME, unavailable
from rtdb.storage.pg_schema import _LOCK, CREATE_SEARCH_SCHEMA

DDL = CREATE_SEARCH_SCHEMA + """
CREATE TABLE IF NOT EXISTS rtdb_cluster_nodes (
    node_id      text COLLATE "C" PRIMARY KEY,
    address      text NOT NULL DEFAULT '',
    lease_until  timestamptz NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE rtdb_cluster_nodes ADD COLUMN IF NOT EXISTS process text COLLATE "C" NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS rtdb_ondisconnect (
    session_id  text COLLATE "C" NOT NULL,
    ord         bigint GENERATED ALWAYS AS IDENTITY,
    node_id     text COLLATE "C" NOT NULL,
    ns          text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    path        text COLLATE "C" NOT NULL,
    data        bytea NOT NULL,
    caller      bytea NOT NULL,
    PRIMARY KEY (session_id, ord)
);
CREATE INDEX IF NOT EXISTS rtdb_ondisconnect_node ON rtdb_ondisconnect (node_id);
"""

STATEMENT_TIMEOUT = "5s"
CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 5.0

_LIVE = "SELECT 1 FROM rtdb_cluster_nodes n WHERE n.node_id = o.node_id AND n.lease_until > now()"


class ClusterDb:
    """The cluster's statements over a small pool of asynchronous connections (``url``: the
    same libpq URI as the store's; its ``search_path`` picks the schema)."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self.channel = ""
        """The NOTIFY channel of this schema's nodes (session takeovers)."""

    async def open(self) -> None:
        """Connect, and create the tables if they are missing."""
        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")

        self._pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, open=False, configure=configure,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                    "application_name": APPLICATION_NAME}, name="rtdb-cluster",
        )
        try:
            await self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except PoolTimeout as exc:
            await self._pool.close()
            self._pool = None
            raise Unavailable("The database (PostgreSQL) is unavailable: no connection") from exc
        async with self._conn() as pg:
            row = await (await pg.execute("SELECT current_schema()")).fetchone()
            schema = row[0] if row and row[0] else "public"
            self.channel = "rtdb_ls_" + hashlib.sha1(schema.encode()).hexdigest()[:16]
            async with pg.transaction():
                await pg.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                await pg.execute(DDL)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; lost or unreachable servers raise :class:`Unavailable`."""
        if self._pool is None:
            raise Unavailable("The cluster database is not open")
        try:
            async with self._pool.connection(timeout=POOL_TIMEOUT_S) as pg:
                yield pg
        except PoolTimeout as exc:
            raise Unavailable("The database (PostgreSQL) is unavailable: no connection") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc

    async def _execute(self, query: str, args: Any = None) -> tuple[int, list[tuple[Any, ...]]]:
        """Run one statement: the rows it changed and the rows it returned."""
        async with self._conn() as pg:
            cur = await pg.execute(query, args)
            return cur.rowcount, (await cur.fetchall() if cur.description is not None else [])

    # -- nodes -------------------------------------------------------------------
    async def add_node(self, node_id: str, address: str, lease_s: float) -> None:
        await self._execute(
            "INSERT INTO rtdb_cluster_nodes (node_id, address, lease_until, process) "
            "VALUES (%s, %s, now() + make_interval(secs => %s), %s)", (node_id, address, lease_s, APPLICATION_NAME))

    async def renew(self, node_id: str, lease_s: float) -> bool:
        """Extend a lease that has not run out; ``False``: it has (or the row is gone)."""
        count, _ = await self._execute(
            "UPDATE rtdb_cluster_nodes SET lease_until = now() + make_interval(secs => %s) "
            "WHERE node_id = %s AND lease_until > now()", (lease_s, node_id))
        return count == 1

    async def expire(self, node_id: str) -> None:
        """End a lease now: the sweepers run the node's sessions' operations."""
        await self._execute(
            "UPDATE rtdb_cluster_nodes SET lease_until = now() - interval '1 second' WHERE node_id = %s",
            (node_id,))

    async def nodes(self) -> list[tuple[str, str, bool]]:
        """Every node row: id, address, whether its lease is live."""
        _, rows = await self._execute(
            "SELECT node_id, address, lease_until > now() FROM rtdb_cluster_nodes ORDER BY node_id")
        return [(r[0], r[1], bool(r[2])) for r in rows]

    async def end_expired_sessions(self) -> int:
        """Terminate the database sessions of processes whose every node row has an expired lease;
        how many. A process stopped (SIGSTOP, a long pause) in the middle of a write group keeps
        its namespace's row lock: its backend waits for the next pipelined message, which no
        timeout of PostgreSQL 15 ends. Its lease ran out, so it has fenced itself and writes
        nothing more; ending its sessions rolls the group back and lets the others write. The
        connections are found by ``application_name`` (:data:`APPLICATION_NAME`), in this database
        only; a role that may not signal them gets an error, which the sweeper logs."""
        _, rows = await self._execute(
            "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a "
            "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.application_name IN ("
            "SELECT process FROM rtdb_cluster_nodes WHERE lease_until <= now() AND process <> '' "
            "EXCEPT SELECT process FROM rtdb_cluster_nodes WHERE lease_until > now())")
        return int(rows[0][0]) if rows else 0

    # -- operations ----------------------------------------------------------------
    async def add_op(self, node_id: str, session_id: str, ns: str, kind: str, path: str, data: bytes,
                     caller: bytes) -> bool:
        """Store an operation; ``False`` if ``node_id`` holds no live lease (nothing stored)."""
        count, _ = await self._execute(
            "INSERT INTO rtdb_ondisconnect (session_id, node_id, ns, kind, path, data, caller) "
            "SELECT %s, node_id, %s, %s, %s, %s, %s FROM rtdb_cluster_nodes "
            "WHERE node_id = %s AND lease_until > now() FOR SHARE",
            (session_id, ns, kind, path, data, caller, node_id))
        return count == 1

    async def cancel(self, session_id: str, path: str) -> int:
        """Delete the session's operations at or below ``path``; how many."""
        count, _ = await self._execute(
            "DELETE FROM rtdb_ondisconnect WHERE session_id = %s "
            "AND (%s = '' OR path = %s OR starts_with(path, %s || '/'))", (session_id, path, path, path))
        return max(count, 0)

    async def discard(self, session_id: str) -> None:
        await self._execute("DELETE FROM rtdb_ondisconnect WHERE session_id = %s", (session_id,))

    async def latest(self, session_id: str) -> tuple[str, bytes, int] | None:
        """The node, encoded caller and ``ord`` of the session's latest operation (``None``: it
        has none). Read without a lock: the taker's ``DELETE`` decides who runs what."""
        _, rows = await self._execute(
            "SELECT node_id, caller, ord FROM rtdb_ondisconnect WHERE session_id = %s ORDER BY ord DESC LIMIT 1",
            (session_id,))
        return (rows[0][0], bytes(rows[0][1]), int(rows[0][2])) if rows else None

    async def namespaces(self, session_id: str) -> list[str]:
        """The namespaces the session has operations in, in the order of their first one."""
        _, rows = await self._execute(
            "SELECT ns FROM rtdb_ondisconnect WHERE session_id = %s GROUP BY ns ORDER BY min(ord)", (session_id,))
        return [r[0] for r in rows]

    async def orphans(self) -> list[tuple[str, str, str]]:
        """``(node, session, namespace)`` of every stored operation whose node holds no live
        lease (its lease ran out, or its row is gone), in the order of their first operation."""
        _, rows = await self._execute(
            f"SELECT o.node_id, o.session_id, o.ns FROM rtdb_ondisconnect o WHERE NOT EXISTS ({_LIVE}) "
            "GROUP BY o.node_id, o.session_id, o.ns ORDER BY min(o.ord)")
        return [(r[0], r[1], r[2]) for r in rows]

    async def remove_expired(self) -> int:
        """Delete the rows of expired nodes that have no operations left; how many."""
        count, _ = await self._execute(
            "DELETE FROM rtdb_cluster_nodes n WHERE lease_until < now() "
            "AND NOT EXISTS (SELECT 1 FROM rtdb_ondisconnect o WHERE o.node_id = n.node_id)")
        return max(count, 0)

    # -- takeover notices ------------------------------------------------------------
    async def notify(self, payload: str) -> None:
        await self._execute("SELECT pg_notify(%s, %s)", (self.channel, payload))

    async def listen(self, on_payload: Callable[[str], None]) -> None:
        """Call ``on_payload`` with every notice on :attr:`channel` until cancelled (reconnects
        after errors, pausing a second)."""
        while True:
            try:
                pg = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                           connect_timeout=CONNECT_TIMEOUT_S)
            except psycopg.OperationalError:
                await asyncio.sleep(1.0)
                continue
            try:
                await pg.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                async for notice in pg.notifies():
                    on_payload(notice.payload)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                await asyncio.sleep(1.0)
            finally:
                await pg.close()
