"""Group commit, whatever the database: :class:`GroupCommit` applies a batch of writes as one
transaction (the savepoint-retry strategy), and :class:`ThreadedStore` is a store's thread
model around it — one writer thread that takes what has queued up and commits it as one
group, reader threads for read transactions, results handed to the event loop once per group.
The SQLite store (:mod:`rtdb.storage.sqlite`) and the PostgreSQL store
(:mod:`rtdb.storage.postgres`) are both made of these.

Operations run as plain functions over a :class:`~rtdb.storage.txn.Txn` inside a thread:
``await store.write(fn)`` runs ``fn(txn)`` in the writer thread as part of the current group
transaction (an op that fails leaves no trace: see :meth:`GroupCommit.apply`) and returns its
result once the group has committed; ``await store.read(fn)`` runs ``fn(txn)`` in a read
transaction (a consistent snapshot) on a reader connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from rtdb.core.errors import RtdbError, Unavailable
from rtdb.core.path import Path
from rtdb.storage.lone import ALONE
from rtdb.storage.store import CompactReport
from rtdb.storage.txn import Txn

log = logging.getLogger("rtdb.storage")

T = TypeVar("T")

MAX_BATCH = 512


@dataclass
class Op:
    """One write of a group: ``fn(txn)`` and what it gave. ``token`` is the caller's
    (the awaiting future, or a request id in the writer process)."""

    fn: Callable[[Txn], Any]
    token: Any = None
    paths: tuple[Path, ...] = ()
    """Where it writes, when known: a store whose reads cost a round trip reads their rows
    for the whole group at once (:meth:`GroupCommit.prefetch`)."""
    result: Any = None
    error: BaseException | None = None


@dataclass
class StoreStats:
    batches: int = 0
    ops: int = 0
    largest_batch: int = 0
    errors: int = 0
    savepoint_retries: int = 0
    seconds: float = 0.0
    """Time spent applying and committing groups (``/metrics``)."""
    extra: dict[str, int] = field(default_factory=dict)


class GroupCommit:
    """Applies batches of writes over one write connection, one transaction per batch.
    Subclasses open the connection (:attr:`txn`) and say how a group's transaction begins
    (:meth:`begin`); the connection takes ``BEGIN``/``SAVEPOINT``/``COMMIT`` as statements
    and counts the rows its statements changed (``total_changes``)."""

    txn: Txn | None
    stats: StoreStats

    def begin(self, txn: Txn) -> None:
        """Start the group's transaction and bring what ``txn`` caches (seq, indexes) up to date."""
        raise NotImplementedError

    def aborted(self, txn: Txn) -> bool:
        """Whether a failed statement has spoilt the whole transaction (PostgreSQL; SQLite
        undoes just the statement)."""
        return False

    def committed(self, changes: int) -> None:
        """A group that changed ``changes`` rows committed."""

    def end(self, txn: Txn) -> None:
        """A group's transaction is over, committed or not (PostgreSQL: its borrowed connection
        goes back to the pool)."""

    prefetches = False
    """Whether reading the group's write targets at once is worth a statement (PostgreSQL)."""

    def pipelined(self, txn: Txn) -> AbstractContextManager[Any]:
        """Around a group's first pass: a connection that can send statements without waiting
        for each answer (PostgreSQL's pipeline mode) does so here; an error it reports late
        (when the pass ends) makes the group run again with savepoints."""
        return contextlib.nullcontext()

    def apply(self, batch: list[Op]) -> bool:
        """Apply ``batch`` as one transaction and commit it; ``False`` if nothing committed
        (its only op failed). A failing op must leave no trace. Ops run without savepoints
        first (most failures — rules, preconditions — happen before any row changes); only if
        one fails after changing rows is the group rolled back and run again with a savepoint
        around each op. Raises if the commit itself fails (then nothing of the batch happened)."""
        txn = self.txn
        assert txn is not None
        started = time.perf_counter()
        try:
            return self._apply(txn, batch)
        finally:
            self.end(txn)
            self.stats.seconds += time.perf_counter() - started

    def _apply(self, txn: Txn, batch: list[Op]) -> bool:
        conn = txn.conn
        seq_before = txn.seq
        changes_before = conn.total_changes
        try:
            self.begin(txn)
            conn = txn.conn  # begin may have replaced a broken connection
            seq_before = txn.seq
            if not self._first_pass(txn, batch):
                conn.execute("ROLLBACK")
                txn.forget()
                txn.seq = seq_before
                if len(batch) == 1:
                    return False  # one op alone: the rollback undid it, nothing else to keep
                self.stats.savepoint_retries += 1
                self.begin(txn)  # others may have committed in between: the seq is read again
                conn = txn.conn
                seq_before = txn.seq
                self._apply_ops(txn, batch, savepoints=True)
            txn.flush_log()
            if txn.seq != seq_before:
                txn.save_seq()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # type: ignore[attr-defined]
                conn.execute("ROLLBACK")
            txn.forget()
            txn.seq = seq_before
            raise
        self.stats.batches += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.committed(conn.total_changes - changes_before)
        return True

    def _first_pass(self, txn: Txn, batch: list[Op]) -> bool:
        """The ops without savepoints; ``False``: roll back and run them again with savepoints."""
        try:
            if self.prefetches and len(batch) > 1:
                txn.prefetch([path for op in batch for path in op.paths])
            with self.pipelined(txn):
                return self._apply_ops(txn, batch, savepoints=False)
        except Unavailable:
            raise
        except Exception:  # a statement failed and said so only when the pipeline ended
            log.info("a group's pipelined statements failed: it runs again with savepoints", exc_info=True)
            return False

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
                elif conn.total_changes != changes or self.aborted(txn):
                    return False  # counted when the group runs again
                self.stats.errors += 1
            if savepoints:
                txn.flush_log()  # inside this op's savepoint: a later op's rollback keeps it
                conn.execute("RELEASE op")
        return True


class Maintenance(Protocol):
    """Work a writer does between groups (SQLite: giving space back)."""

    @property
    def busy(self) -> bool: ...
    @property
    def policy(self) -> Any: ...

    def due_in(self) -> float | None: ...
    def abandon(self) -> list[Any]: ...


class NamespaceWriter(Protocol):
    """A :class:`GroupCommit` as the writer thread drives it."""

    stats: StoreStats

    @property
    def space(self) -> Maintenance | None: ...

    def open(self) -> None: ...
    def close(self) -> None: ...
    def apply(self, batch: list[Op]) -> bool: ...
    def request_compact(self, token: Any) -> None: ...
    def maintain(self) -> list[tuple[Any, CompactReport]]: ...


@dataclass
class _Compact:
    """A compaction asked of the writer thread (:meth:`ThreadedStore.compact`)."""

    future: asyncio.Future[CompactReport]


class _Wake:
    """Asks the writer thread to look at its between-group work again: a lone write committed
    on the event loop's thread (:meth:`ThreadedStore.write`) may have made some due."""


_WAKE = _Wake()


def _resolve(done: list[tuple[Any, CompactReport]]) -> None:
    for future, report in done:
        if not future.done():
            future.set_result(report)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(Unavailable("The database closed before the compaction finished"))


class ThreadedStore:
    """A namespace's store as threads: the writer thread owns ``writer`` (when ``writes``),
    reads run on ``readers`` threads through :meth:`_read_in_thread`. ``serves_lone``: a
    write that is the server's only work may commit on the event loop's thread, and such a
    read runs there (worth it where a commit takes microseconds: SQLite)."""

    serves_lone = False

    def __init__(self, name: str, writer: NamespaceWriter, *, readers: int = 2, writes: bool = True) -> None:
        self.name = name
        self.stats = writer.stats
        self._writes = writes
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"rtdb-reader-{name}")
        self._inbox: queue.SimpleQueue[Op | _Compact | _Wake | None] = queue.SimpleQueue()
        self._queued = 0  # writes handed to the writer thread and not finished yet (event loop only)
        self._writing = threading.Lock()  # held by whichever thread uses the write connection
        self._sleeping = False  # the writer thread waits with no between-group work due
        self._woken = False  # a _WAKE is on its way to the writer thread
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._writer = writer
        self.on_commit: Callable[[list[Any]], None] | None = None

    # -- lifetime (subclasses add their resources) -----------------------------
    async def _start_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if not self._writes:
            return
        ready: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._run_writer, args=(ready,), name=f"rtdb-writer-{self.name}",
                                        daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._thread.join()
            self._thread = None
            raise

    async def _stop(self) -> None:
        """Commit what was already submitted, stop the writer thread and let reads under way end."""
        self._closing = True
        if self._thread is not None and self._stopped is not None:
            self._inbox.put(None)
            await self._stopped
            self._thread.join()
            self._thread = None
        await asyncio.get_running_loop().run_in_executor(None, self._readers.shutdown, True)

    # -- reads ----------------------------------------------------------------
    async def read(self, fn: Callable[[Txn], T]) -> T:
        if self._closing:
            raise Unavailable("The database is not open")
        if self.serves_lone and ALONE.get():  # nobody else to serve: read here, without two thread wake-ups
            return self._read_in_thread(fn)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_in_thread, fn)

    def _read_in_thread(self, fn: Callable[[Txn], T]) -> T:
        raise NotImplementedError

    # -- writes ---------------------------------------------------------------
    async def write(self, fn: Callable[[Txn], T], *, paths: tuple[Path, ...] = ()) -> T:
        if self._thread is None or self._closing:
            raise Unavailable("The database is not open")
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        op = Op(fn, future, paths)
        if self.serves_lone and self._queued == 0 and ALONE.get() and self._writing.acquire(blocking=False):
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
        """After a lone write: have the writer thread see between-group work it made due."""
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

    async def _compact_between_groups(self) -> CompactReport:
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

    def _next(self, loop: asyncio.AbstractEventLoop) -> Op | _Compact | _Wake | None:
        """The next request; while none is waiting, between-group work runs in steps."""
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
        except Unavailable as exc:
            log.error("group commit failed: %s", exc.message)
            return None
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
