"""The SQLite store: one file per namespace, WAL, one writer thread with group
commit, reads on their own connections.

Operations run as plain functions over a :class:`Txn` inside a thread:
``await store.write(fn)`` runs ``fn(txn)`` in the writer thread inside a
savepoint of the current group transaction and returns its result once the
group has committed; ``await store.read(fn)`` runs ``fn(txn)`` in a read
transaction (a consistent snapshot) on a reader connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, TypeVar

from rtdb.core.errors import RtdbError, Unavailable
from rtdb.storage.txn import SCHEMA, Txn

log = logging.getLogger("rtdb.storage")

T = TypeVar("T")

MAX_BATCH = 512


@dataclass
class _Op:
    fn: Callable[[Txn], Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class StoreStats:
    batches: int = 0
    ops: int = 0
    largest_batch: int = 0
    errors: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class SqliteStore:
    """One namespace's database file."""

    def __init__(self, file: FsPath, *, synchronous: str = "FULL", readers: int = 2) -> None:
        self.file = file
        self.synchronous = synchronous
        self.stats = StoreStats()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rtdb-writer-{file.stem}")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"rtdb-reader-{file.stem}")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._queue: asyncio.Queue[_Op | None] = asyncio.Queue()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._write_txn: Txn | None = None
        self.on_commit: Callable[[list[Any]], None] | None = None

    # -- lifetime -------------------------------------------------------------
    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_writer)
        self._task = asyncio.create_task(self._run_writer(), name=f"rtdb-writer-{self.file.stem}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-16000")
        return conn

    def _open_writer(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.executescript(SCHEMA)
        self._write_conn = conn
        self._write_txn = Txn(conn)

    async def close(self) -> None:
        """Commit what was already submitted, then close. Later writes get :class:`Unavailable`."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._close_writer)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None

    # -- reads ----------------------------------------------------------------
    async def read(self, fn: Callable[[Txn], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_in_thread, fn)

    def _reader_txn(self) -> Txn:
        txn: Txn | None = getattr(self._local, "txn", None)
        if txn is None:
            conn = self._connect()
            with self._conns_lock:
                self._reader_conns.append(conn)
            txn = Txn(conn)
            self._local.txn = txn
        return txn

    def _read_in_thread(self, fn: Callable[[Txn], T]) -> T:
        txn = self._reader_txn()
        txn.conn.execute("BEGIN")
        try:
            return fn(txn)
        finally:
            txn.conn.execute("COMMIT")

    # -- writes ---------------------------------------------------------------
    async def write(self, fn: Callable[[Txn], T]) -> T:
        if self._task is None or self._closing:
            raise Unavailable("The database is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(fn, future))
        return await future

    async def _run_writer(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                op = self._queue.get_nowait()
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            try:
                committed = await loop.run_in_executor(self._writer, self._apply_batch, batch)
            except Exception:  # the commit itself failed: nothing of the batch happened (logged, not sent)
                log.exception("group commit failed")
                for op in batch:
                    if not op.future.done():
                        op.future.set_exception(Unavailable("The write was not committed"))
                continue
            self.stats.batches += 1
            self.stats.ops += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            if committed and self.on_commit is not None:
                self.on_commit([op.result for op in batch if op.error is None])
            for op in batch:
                if op.future.done():
                    continue
                if op.error is not None:
                    op.future.set_exception(op.error)
                else:
                    op.future.set_result(op.result)

    def _apply_batch(self, batch: list[_Op]) -> bool:
        txn = self._write_txn
        assert txn is not None
        conn = txn.conn
        seq_before = txn.seq
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(txn)
                except RtdbError as exc:
                    conn.execute("ROLLBACK TO op")
                    op.error = exc
                    self.stats.errors += 1
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    log.exception("write failed")
                    op.error = exc
                    self.stats.errors += 1
                conn.execute("RELEASE op")
            if txn.seq != seq_before:
                txn.save_seq()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            txn.seq = seq_before
            raise
        return True
