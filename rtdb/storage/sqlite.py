"""The SQLite store: one file per namespace, WAL, one writer thread with group
commit, reads on their own connections. :class:`GroupWriter` is the group commit
itself, synchronous; the writer process (`--write-process`,
:mod:`rtdb.engine.writer`) drives it too, and its server's stores only read.

Operations run as plain functions over a :class:`Txn` inside a thread:
``await store.write(fn)`` runs ``fn(txn)`` in the writer thread as part of the
current group transaction (an op that fails leaves no trace: see
:meth:`GroupWriter.apply`) and returns its result once the group has
committed; ``await store.read(fn)`` runs ``fn(txn)`` in a read transaction (a
consistent snapshot) on a reader connection.

Every SQLite call releases the GIL and must win it back from the event loop's
thread, so the write path keeps the number of calls per write low (one INSERT
per node, cached ancestors, no savepoint per op).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, TypeVar

from rtdb.core.errors import RtdbError, Unavailable
from rtdb.storage import migrate
from rtdb.storage.files import Hold, hold
from rtdb.storage.lone import ALONE
from rtdb.storage.space import CompactReport, SpaceKeeper, SpacePolicy, prepare
from rtdb.storage.space import enable_incremental_vacuum as enable_incremental_vacuum  # for the migration
from rtdb.storage.rows import PAGE_SIZE
from rtdb.storage.txn import SCHEMA, Txn

log = logging.getLogger("rtdb.storage")

T = TypeVar("T")

MAX_BATCH = 512


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


@dataclass
class Op:
    """One write of a group: ``fn(txn)`` and what it gave. ``token`` is the caller's
    (the awaiting future, or a request id in the writer process)."""

    fn: Callable[[Txn], Any]
    token: Any = None
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Compact:
    """A compaction asked of the writer thread (:meth:`SqliteStore.compact`)."""

    future: asyncio.Future[CompactReport]


class _Wake:
    """Asks the writer thread to look at its vacuum and checkpoint work again: a lone write
    committed on the event loop's thread (:meth:`SqliteStore.write`) may have made some due."""


_WAKE = _Wake()


def _resolve(done: list[tuple[Any, CompactReport]]) -> None:
    for future, report in done:
        if not future.done():
            future.set_result(report)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(Unavailable("The database closed before the compaction finished"))


@dataclass
class StoreStats:
    batches: int = 0
    ops: int = 0
    largest_batch: int = 0
    errors: int = 0
    savepoint_retries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def connect(file: FsPath, synchronous: str, space: SpacePolicy | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only: packed rows of up to ~2 KB stay on their page
    prepare(conn, space)  # before the switch to WAL: a new file gets incremental auto-vacuum
    _set_wal(conn)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA cache_size=-16000")
    return conn


class GroupWriter:
    """The write connection of one file and group commit over it, synchronous: the
    store's writer thread drives it, and so does the writer process (`--write-process`)."""

    def __init__(self, file: FsPath, *, synchronous: str = "FULL", stats: StoreStats | None = None,
                 space: SpacePolicy | None = None) -> None:
        self.file = file
        self.synchronous = synchronous
        self.stats = stats if stats is not None else StoreStats()
        self.policy = space if space is not None else SpacePolicy()
        self.txn: Txn | None = None
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
            self.txn = Txn(conn, writing=True)
            self.space = SpaceKeeper.of(conn, self.file, self.policy, busy_timeout_ms=BUSY_TIMEOUT_MS)
        except BaseException:
            conn.close()
            self._release()
            raise

    def close(self) -> None:
        if self.txn is not None:
            self.txn.conn.close()
            self.txn = None
        self._release()

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def request_compact(self, token: Any) -> None:
        """Give back every free page and truncate the WAL, between groups; :meth:`maintain`
        returns ``(token, CompactReport)`` once done."""
        assert self.txn is not None and self.space is not None
        self.space.request_compact(token, self.txn.conn)

    def maintain(self) -> list[tuple[Any, CompactReport]]:
        """One bounded step of vacuum or checkpoint work, outside any group (see
        :meth:`SpaceKeeper.due_in` for when); the compactions it finished. A failure is
        logged and the work dropped: giving space back must never stop the writes."""
        txn, space = self.txn, self.space
        if txn is None or space is None:
            return []
        try:
            return space.step(txn.conn)
        except sqlite3.Error:
            log.exception("giving space back in %s failed", self.file.name)
            if txn.conn.in_transaction:
                txn.conn.execute("ROLLBACK")
            tokens = space.abandon()
            self.space = SpaceKeeper.of(txn.conn, self.file, self.policy, busy_timeout_ms=BUSY_TIMEOUT_MS)
            report = CompactReport(0, 0, 0, self.space.mode, False)
            return [(token, report) for token in tokens]

    def apply(self, batch: list[Op]) -> bool:
        """Apply ``batch`` as one transaction and commit it; ``False`` if nothing committed
        (its only op failed). A failing op must leave no trace. Ops run without savepoints
        first (most failures — rules, preconditions — happen before any row changes); only if
        one fails after changing rows is the group rolled back and run again with a savepoint
        around each op. Raises if the commit itself fails (then nothing of the batch happened)."""
        txn = self.txn
        assert txn is not None
        conn = txn.conn
        seq_before = txn.seq
        changes_before = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")
        txn.forget()  # what it knew of the file may be stale (another process may have written)
        try:
            txn.refresh_if_shared_changed()
            seq_before = txn.seq
            if not self._apply_ops(txn, batch, savepoints=False):
                conn.execute("ROLLBACK")
                txn.forget()
                txn.seq = seq_before
                if len(batch) == 1:
                    return False  # one op alone: the rollback undid it, nothing else to keep
                self.stats.savepoint_retries += 1
                conn.execute("BEGIN IMMEDIATE")
                self._apply_ops(txn, batch, savepoints=True)
            txn.flush_log()
            if txn.seq != seq_before:
                txn.save_seq()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            txn.forget()
            txn.seq = seq_before
            raise
        self.stats.batches += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        if self.space is not None:
            self.space.committed(conn.total_changes - changes_before)
        return True

    def _apply_ops(self, txn: Txn, batch: list[Op], *, savepoints: bool) -> bool:
        """Run each op; ``False`` (stop) when one failed after changing rows and there is no savepoint."""
        conn = txn.conn
        for op in batch:
            op.result, op.error = None, None
            if savepoints:
                conn.execute("SAVEPOINT op")
            changes = conn.total_changes
            seq = txn.seq
            try:
                op.result = op.fn(txn)
            except Exception as exc:
                if not isinstance(exc, RtdbError):
                    log.exception("write failed")
                op.error = exc
                txn.seq = seq
                if savepoints:
                    conn.execute("ROLLBACK TO op")
                    txn.forget()
                elif conn.total_changes != changes:
                    return False  # counted when the group runs again
                self.stats.errors += 1
            if savepoints:
                txn.flush_log()  # inside this op's savepoint: a later op's rollback keeps it
                conn.execute("RELEASE op")
        return True


class SqliteStore:
    """One namespace's database file. With ``writer=False`` it only reads: another
    process (the writer process) owns the writes and must have created the file."""

    def __init__(self, file: FsPath, *, synchronous: str = "FULL", readers: int = 2, writer: bool = True,
                 space: SpacePolicy | None = None) -> None:
        self.file = file
        self.synchronous = synchronous
        self.stats = StoreStats()
        self._writes = writer
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"rtdb-reader-{file.stem}")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._inbox: queue.SimpleQueue[Op | _Compact | _Wake | None] = queue.SimpleQueue()
        self._queued = 0  # writes handed to the writer thread and not finished yet (event loop only)
        self._writing = threading.Lock()  # held by whichever thread uses the write connection
        self._sleeping = False  # the writer thread waits with no vacuum or checkpoint work due
        self._woken = False  # a _WAKE is on its way to the writer thread
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._writer = GroupWriter(file, synchronous=synchronous, stats=self.stats, space=space)
        self._hold: Hold | None = None  # this store's readers (the writer holds its own)
        self.on_commit: Callable[[list[Any]], None] | None = None

    @property
    def space(self) -> SpaceKeeper | None:
        """The writer's vacuum and checkpoint state (``None`` without a writer thread)."""
        return self._writer.space

    # -- lifetime -------------------------------------------------------------
    async def open(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._hold = await asyncio.to_thread(hold, self.file)  # waits while the namespace is being dropped
        try:
            await self._start_writer(loop)
        except BaseException:
            self._hold.release()
            raise

    async def _start_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._writes:
            return
        ready: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._run_writer, args=(ready,), name=f"rtdb-writer-{self.file.stem}",
                                        daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._thread.join()
            self._thread = None
            raise

    async def close(self) -> None:
        """Commit what was already submitted, then close. Later writes get :class:`Unavailable`."""
        self._closing = True
        if self._thread is not None and self._stopped is not None:
            self._inbox.put(None)
            await self._stopped
            self._thread.join()
            self._thread = None
        await asyncio.get_running_loop().run_in_executor(None, self._readers.shutdown, True)  # reads under way end
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._hold is not None:
            self._hold.release()  # after the last connection: a drop may delete the files now
            self._hold = None

    # -- reads ----------------------------------------------------------------
    async def read(self, fn: Callable[[Txn], T]) -> T:
        if self._closing:
            raise Unavailable("The database is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_in_thread, fn)

    def _reader_txn(self) -> Txn:
        txn: Txn | None = getattr(self._local, "txn", None)
        if txn is None:
            conn = connect(self.file, self.synchronous, self._writer.policy)
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
        if self._thread is None or self._closing:
            raise Unavailable("The database is not open")
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        op = Op(fn, future)
        if self._queued == 0 and ALONE.get() and self._writing.acquire(blocking=False):
            try:  # nothing before it and nobody else to serve: commit here, without two thread wake-ups
                committed = self._apply([op])
                self._wake_for_space()
            finally:
                self._writing.release()
            self._finish([op], committed)
        else:
            self._queued += 1
            self._inbox.put(op)
        return await future

    def _wake_for_space(self) -> None:
        """After a lone write: have the writer thread see vacuum or checkpoint work it made due."""
        space = self._writer.space
        if space is None or self._woken:
            return
        if self._sleeping and space.due_in() is not None or space.busy:
            self._woken = True
            self._inbox.put(_WAKE)

    def _run_writer(self, ready: asyncio.Future[None]) -> None:
        """The writer thread: own the write connection; take what has arrived, apply it
        as one transaction, hand the results to the event loop (one wake-up per batch)."""
        loop = self._loop
        assert loop is not None
        try:
            self._writer.open()
        except BaseException as exc:
            loop.call_soon_threadsafe(ready.set_exception, exc)
            return
        loop.call_soon_threadsafe(ready.set_result, None)
        try:
            self._serve_writes(loop)
        finally:
            self._writer.close()
            loop.call_soon_threadsafe(self._finish_stopping)

    async def compact(self) -> CompactReport:
        """Give back every free page and truncate the WAL, in steps between write groups."""
        if self._thread is None or self._closing:
            raise Unavailable("The database is not open")
        assert self._loop is not None
        future: asyncio.Future[CompactReport] = self._loop.create_future()
        self._inbox.put(_Compact(future))
        return await future

    def _serve_writes(self, loop: asyncio.AbstractEventLoop) -> None:
        writer = self._writer
        groups = 0
        stopping = False
        while not stopping:
            item = self._next(loop)
            batch: list[Op] = []
            while item is not None:
                if isinstance(item, _Compact):
                    with self._writing:
                        writer.request_compact(item.future)
                elif isinstance(item, _Wake):
                    self._woken = False
                else:
                    batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True
            if batch:
                with self._writing:
                    committed = self._apply(batch)
                loop.call_soon_threadsafe(self._finish_queued, batch, committed)
                groups += 1
            batch, item = [], None  # handed over: keep no write (it may be large) while waiting
            space = writer.space
            if not stopping and space is not None and space.busy and groups >= space.policy.busy_step_every:
                groups = 0  # writes keep coming: one step of pending work now and then all the same
                self._maintain(loop)
        if writer.space is not None:
            for future in writer.space.abandon():
                loop.call_soon_threadsafe(_fail, future)

    def _next(self, loop: asyncio.AbstractEventLoop) -> Op | _Compact | None:
        """The next request; while none is waiting, vacuum and checkpoint work runs in steps."""
        space = self._writer.space
        while True:
            with self._writing:  # a lone write may be committing on the event loop's thread
                due = space.due_in() if space is not None else None
                self._sleeping = due is None
            try:
                if due is None:
                    return self._inbox.get()
                return self._inbox.get(timeout=due) if due > 0 else self._inbox.get_nowait()
            except queue.Empty:
                self._maintain(loop)

    def _apply(self, batch: list[Op]) -> bool | None:
        """Commit ``batch`` (holding ``_writing``); ``None`` if the commit itself failed:
        then nothing of the batch happened (logged, not sent)."""
        try:
            return self._writer.apply(batch)
        except Exception:
            log.exception("group commit failed")
            return None

    def _maintain(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._writing:
            done = self._writer.maintain()
        if done:
            loop.call_soon_threadsafe(_resolve, done)

    def _finish_stopping(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def _finish_queued(self, batch: list[Op], committed: bool | None) -> None:
        self._queued -= len(batch)
        self._finish(batch, committed)

    def _finish(self, batch: list[Op], committed: bool | None) -> None:
        """On the event loop: publish what committed, then resolve every op's future."""
        if committed is None:
            for op in batch:
                if not op.token.done():
                    op.token.set_exception(Unavailable("The write was not committed"))
            return
        if committed and self.on_commit is not None:
            self.on_commit([op.result for op in batch if op.error is None])
        for op in batch:
            future = op.token
            if future.done():
                continue
            if op.error is not None:
                future.set_exception(op.error)
            else:
                future.set_result(op.result)


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
