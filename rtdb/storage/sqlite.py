"""The SQLite store: one file per namespace, WAL, one writer thread with group
commit, reads on their own connections. :class:`GroupWriter` is the group commit
itself, synchronous; the writer process (`--write-process`,
:mod:`rtdb.engine.writer`) drives it too, and its server's stores only read.

The thread model and the group commit's savepoint strategy are
:mod:`rtdb.storage.group`'s, shared with the PostgreSQL store.

Every SQLite call releases the GIL and must win it back from the event loop's
thread, so the write path keeps the number of calls per write low (one INSERT
per node, cached ancestors, no savepoint per op).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path as FsPath
from typing import Any, TypeVar

from rtdb.storage import migrate
from rtdb.storage.files import Hold, hold
from rtdb.storage.group import MAX_BATCH as MAX_BATCH  # for the writer process
from rtdb.storage.group import GroupCommit, Op, StoreStats, ThreadedStore
from rtdb.storage.rows import PAGE_SIZE
from rtdb.storage.space import SpaceKeeper, SpacePolicy, prepare
from rtdb.storage.space import enable_incremental_vacuum as enable_incremental_vacuum  # for the migration
from rtdb.storage.store import CompactReport
from rtdb.storage.txn import SCHEMA, Txn

log = logging.getLogger("rtdb.storage")

T = TypeVar("T")

__all__ = ["MAX_BATCH", "EmptyStore", "GroupWriter", "Op", "SqliteStore", "StoreStats", "connect", "probe_write"]

BUSY_TIMEOUT_MS = 10_000


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Other processes (`--workers`) may be creating the same new file at this
    moment; the switch needs the file to itself and SQLite answers "locked" at once rather than
    waiting its busy timeout, so wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def connect(file: FsPath, synchronous: str, space: SpacePolicy | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only: packed rows of up to ~2 KB stay on their page
    prepare(conn, space)  # before the switch to WAL: a new file gets incremental auto-vacuum
    _set_wal(conn)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA cache_size=-16000")
    return conn


class GroupWriter(GroupCommit):
    """The write connection of one file and group commit over it, synchronous: the
    store's writer thread drives it, and so does the writer process (`--write-process`)."""

    def __init__(self, file: FsPath, *, synchronous: str = "FULL", stats: StoreStats | None = None,
                 space: SpacePolicy | None = None) -> None:
        self.file = file
        self.synchronous = synchronous
        self.stats = stats if stats is not None else StoreStats()
        self.policy = space if space is not None else SpacePolicy()
        self.txn: Txn | None = None
        self.conn: sqlite3.Connection | None = None
        """The write connection ``txn`` runs on, while open."""
        self.space: SpaceKeeper | None = None
        """Vacuum and checkpoint work between groups (:mod:`rtdb.storage.space`)."""
        self._hold: Hold | None = None

    def open(self) -> None:
        """Create the file (and its tables) if needed and take the write connection."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self._hold = hold(self.file)  # waits while the namespace is being dropped
        try:
            conn = connect(self.file, self.synchronous, self.policy)
        except BaseException:
            self._release()
            raise
        try:
            migrate.ensure_current(conn, self.file.stem)  # an older file is rewritten first
            conn.executescript(SCHEMA)
            self.txn, self.conn = Txn(conn, writing=True), conn
            self.space = SpaceKeeper.of(conn, self.file, self.policy, busy_timeout_ms=BUSY_TIMEOUT_MS)
        except BaseException:
            conn.close()
            self._release()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.txn = self.conn = None
        self._release()

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def request_compact(self, token: Any) -> None:
        """Give back every free page and truncate the WAL, between groups; :meth:`maintain`
        returns ``(token, CompactReport)`` once done."""
        assert self.conn is not None and self.space is not None
        self.space.request_compact(token, self.conn)

    def maintain(self) -> list[tuple[Any, CompactReport]]:
        """One bounded step of vacuum or checkpoint work, outside any group (see
        :meth:`SpaceKeeper.due_in` for when); the compactions it finished. A failure is
        logged and the work dropped: giving space back must never stop the writes."""
        conn, space = self.conn, self.space
        if conn is None or space is None:
            return []
        try:
            return space.step(conn)
        except sqlite3.Error:
            log.exception("giving space back in %s failed", self.file.name)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            tokens = space.abandon()
            self.space = SpaceKeeper.of(conn, self.file, self.policy, busy_timeout_ms=BUSY_TIMEOUT_MS)
            report = CompactReport(0, 0, 0, self.space.mode, False)
            return [(token, report) for token in tokens]

    def begin(self, txn: Txn) -> None:
        txn.conn.execute("BEGIN IMMEDIATE")
        txn.forget()  # what it knew of the file may be stale (another process may have written)
        txn.refresh_if_shared_changed()

    def committed(self, changes: int) -> None:
        if self.space is not None:
            self.space.committed(changes)


class SqliteStore(ThreadedStore):
    """One namespace's database file. With ``writer=False`` it only reads: another
    process (the writer process) owns the writes and must have created the file."""

    serves_lone = True

    def __init__(self, file: FsPath, *, synchronous: str = "FULL", readers: int = 2, writer: bool = True,
                 space: SpacePolicy | None = None) -> None:
        super().__init__(file.stem, GroupWriter(file, synchronous=synchronous, space=space), readers=readers,
                         writes=writer)
        self.file = file
        self.synchronous = synchronous
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._hold: Hold | None = None  # this store's readers (the writer holds its own)

    @property
    def space(self) -> SpaceKeeper | None:
        """The writer's vacuum and checkpoint state (``None`` without a writer thread)."""
        writer: GroupWriter = self._writer  # type: ignore[assignment]
        return writer.space

    # -- lifetime -------------------------------------------------------------
    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._hold = await asyncio.to_thread(hold, self.file)  # waits while the namespace is being dropped
        try:
            await self._start_writer(loop)
        except BaseException:
            self._hold.release()
            raise

    async def close(self) -> None:
        """Commit what was already submitted, then close. Later writes get :class:`Unavailable`."""
        await self._stop()  # reads under way end
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._hold is not None:
            self._hold.release()  # after the last connection: a drop may delete the files now
            self._hold = None

    # -- reads ----------------------------------------------------------------
    def _reader_txn(self) -> Txn:
        txn: Txn | None = getattr(self._local, "txn", None)
        if txn is None:
            writer: GroupWriter = self._writer  # type: ignore[assignment]
            conn = connect(self.file, self.synchronous, writer.policy)
            with self._conns_lock:
                self._reader_conns.append(conn)
            txn = Txn(conn)
            self._local.txn = txn
        return txn

    def _read_in_thread(self, fn: Callable[[Txn], T]) -> T:
        txn = self._reader_txn()
        conn: sqlite3.Connection = txn.conn  # type: ignore[assignment]
        conn.execute("BEGIN")
        try:
            return fn(txn)
        finally:
            conn.execute("COMMIT")

    async def compact(self) -> CompactReport:
        """Give back every free page and truncate the WAL, in steps between write groups."""
        return await self._compact_between_groups()


class EmptyStore:
    """What a namespace that does not exist looks like: an empty database in memory. Reads
    see no data (as Firebase answers for an empty database) and :meth:`try_write` runs a
    write in a transaction that is rolled back, so the engine can learn whether a write
    would be allowed before it creates anything on disk."""

    def __init__(self) -> None:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(SCHEMA)
        self._conn = conn
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtdb-empty")

    async def read(self, fn: Callable[[Txn], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._rolled_back, fn)

    async def try_write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` as a write on the empty database and undo it; its result or its error."""
        return await self.read(fn)

    def _rolled_back(self, fn: Callable[[Txn], T]) -> T:
        self._conn.execute("BEGIN")
        try:
            return fn(Txn(self._conn))
        finally:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._conn.close()


def probe_write(data_dir: FsPath) -> None:
    """Create, write and remove a small file in ``data_dir``, as a namespace's first write
    would; raises :class:`OSError` when that cannot be done."""
    probe = FsPath(data_dir) / f".probe-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
    os.unlink(probe)
