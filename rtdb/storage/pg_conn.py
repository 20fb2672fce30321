"""A psycopg 3 connection as :class:`rtdb.storage.txn.Txn` uses one, and the PostgreSQL
:class:`~rtdb.storage.txn.Dialect`.

* :class:`PgConn` takes Txn's SQL (the common subset of SQLite and PostgreSQL, ``?``
  placeholders) and translates each statement text once (cached): ``?`` → ``%s``, the empty
  blob ``x''`` → ``''::bytea``, and ``ON CONFLICT (`` → ``ON CONFLICT (ns_id, `` (the shared
  tables' keys start with the namespace). The tables Txn names are views over the shared
  ``rtdb_*`` tables, filtered by the connection's ``rtdb.ns`` setting
  (:mod:`rtdb.storage.pg_schema`). It counts the rows its statements change
  (``total_changes``, which the group commit's savepoint strategy needs) and turns a lost or
  unreachable server into :class:`~rtdb.core.errors.Unavailable`.
* Values: SQLite's ``value``/``priority`` columns take any type; PostgreSQL's are ``json``,
  holding the value as JSON text (ints and floats stay apart — ``1`` vs ``1.0`` —, U+0000 is
  ``\\u0000``, which ``text`` could not hold); a packed row's JSON is stored inside ``[…]`` and
  comes back as the same bytes without being parsed. ``json`` is the only column type of that
  OID in the schema, so one loader decodes every cell and Txn sees Python values, as on SQLite.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterable
from typing import Any

import msgspec
import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

from rtdb.core.errors import Unavailable
from rtdb.storage.store import DisconnectRow

JSON_OID = 114

APPLICATION_NAME = f"rtdb {os.getpid()} {secrets.token_hex(6)}"
"""The ``application_name`` of every connection this process makes: how the sweepers of other
nodes find the database sessions of a node whose lease ran out
(:meth:`rtdb.storage.pg_cluster.ClusterDb.end_expired_sessions`), and how an operator tells
rtdb's sessions apart in ``pg_stat_activity``."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR, pq.TransactionStatus.ACTIVE)
_WRITES = ("INSERT", "UPDATE", "DELETE")


class Cell(bytes):
    """A ``value``/``priority`` cell as JSON text (see :func:`cell`)."""


class CellDumper(Dumper):
    oid = JSON_OID

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


class CellLoader(Loader):
    def load(self, data: Any) -> Any:
        if data[:1] == b"[":  # a packed row's JSON text, as Txn wrote it
            return bytes(data[1:-1])
        return _decode(data)


def cell(value: Any) -> Cell | None:
    """``value`` (a leaf, a priority, a packed row's JSON bytes, a meta value) as a json cell."""
    if value is None:
        return None
    if type(value) is bytes:
        return Cell(b"[" + value + b"]")
    return Cell(_encode(value))


def configure(conn: psycopg.Connection[Any]) -> None:
    """The adapters every rtdb connection uses (json cells both ways)."""
    conn.adapters.register_dumper(Cell, CellDumper)
    conn.adapters.register_loader(JSON_OID, CellLoader)


def unavailable(exc: BaseException) -> Unavailable:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Unavailable(f"The database (PostgreSQL) is unavailable: {first}")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """Txn's statement as psycopg runs it, and whether it changes rows."""
    text = sql.replace("?", "%s").replace("x''", "''::bytea").replace("ON CONFLICT (", "ON CONFLICT (ns_id, ")
    return text, sql.lstrip()[:6].upper() in _WRITES


class PgConn:
    """A psycopg connection (autocommit: the caller sends ``BEGIN``/``COMMIT`` itself, as on
    SQLite with ``isolation_level=None``) behind the interface Txn uses."""

    def __init__(self, pg: psycopg.Connection[Any]) -> None:
        self.pg = pg
        self.total_changes = 0

    @property
    def in_transaction(self) -> bool:
        return self.pg.info.transaction_status in _IN_TRANSACTION

    @property
    def aborted(self) -> bool:
        """A statement failed: the transaction can only be rolled back (to a savepoint)."""
        return self.pg.info.transaction_status == pq.TransactionStatus.INERROR

    def execute(self, sql: str, args: Any = None, /) -> psycopg.Cursor[Any]:
        text, writes = translate(sql)
        try:
            cur = self.pg.execute(text, args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        if writes:
            if self.pg.pgconn.pipeline_status != pq.PipelineStatus.OFF:
                self.total_changes += 1  # its answer has not come yet: count it as a change
            elif cur.rowcount > 0:
                self.total_changes += cur.rowcount
        elif text == "COMMIT" and cur.statusmessage == "ROLLBACK":  # a failed statement had spoilt it
            raise Unavailable("The write was not committed (the transaction had failed)")
        return cur

    def executemany(self, sql: str, args: Iterable[Any], /) -> None:
        text, _ = translate(sql)
        cur = self.pg.cursor()
        try:
            cur.executemany(text, args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        if self.pg.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            self.total_changes += 1  # its answer has not come yet: count it as a change
        elif cur.rowcount > 0:
            self.total_changes += cur.rowcount

    def close(self) -> None:
        self.pg.close()


_NS = "current_setting('rtdb.ns')::integer"
_LIVE = "SELECT 1 FROM rtdb_cluster_nodes WHERE node_id = ? AND lease_until > now()"


class PgDialect:
    """PostgreSQL: cells are json; the seq and the index version are columns of the
    namespace's row in ``rtdb_namespaces`` (the index version moves when any connection
    declares an index: a trigger)."""

    cell = staticmethod(cell)

    def data_version(self, conn: Any) -> int:
        row = conn.execute(f"SELECT index_version FROM rtdb_namespaces WHERE ns_id = {_NS}").fetchone()
        return int(row[0]) if row else -1

    def stored_seq(self, conn: Any) -> int:
        row = conn.execute(f"SELECT seq FROM rtdb_namespaces WHERE ns_id = {_NS}").fetchone()
        return int(row[0]) if row else 0

    def save_seq(self, conn: Any, seq: int) -> None:
        conn.execute(f"UPDATE rtdb_namespaces SET seq = ? WHERE ns_id = {_NS}", (seq,))

    def take_disconnect_ops(self, conn: Any, ns: str, session_id: str, taker: str, owner: str | None,
                            upto: int | None) -> list[DisconnectRow]:
        """One ``DELETE … RETURNING`` on ``rtdb_ondisconnect`` (:mod:`rtdb.storage.pg_cluster`)
        in the caller's transaction: a concurrent taker's DELETE waits for it, then finds nothing."""
        sql = f"DELETE FROM rtdb_ondisconnect WHERE session_id = ? AND ns = ? AND EXISTS ({_LIVE})"
        args: list[Any] = [session_id, ns, taker]
        if owner is not None:
            sql += f" AND node_id = ? AND NOT EXISTS ({_LIVE})"
            args += (owner, owner)
        if upto is not None:
            sql += " AND ord <= ?"
            args.append(upto)
        sql += " RETURNING session_id, ord, ns, kind, path, data, caller"
        return [DisconnectRow(r[0], int(r[1]), r[2], r[3], r[4], bytes(r[5]), bytes(r[6]))
                for r in conn.execute(sql, args).fetchall()]


POSTGRES = PgDialect()
