"""Where the engine's write commands run: the :class:`Writer` seam.

:class:`InProcessWriter` (the default) runs each command in its namespace's store,
on the store's writer thread (or PostgreSQL connection). :class:`WriterProcess`
(`rtdb serve --write-process`) runs them in a child process: writes on a core of
their own.

In one process the event loop (WebSocket frames, decoding, fan-out, acks) and
the SQLite writer thread take turns at the GIL, so a busy connection is bound
by one core. With ``--write-process`` the server starts one child process that
owns every namespace's write connection and runs the write commands
(:mod:`rtdb.engine.writes`: preconditions, server values, rules, rows) while
the server process goes on with the network; reads stay in the server process
on their own connections (WAL).

The two talk over a socket pair in length-prefixed msgpack frames of the typed
messages of :mod:`rtdb.core.ipc`: a list of :class:`Request` (id, namespace, command)
goes one way, a list of :class:`Group` (one per group transaction: whether it
committed, and an answer per request) comes back. Requests that arrive together are applied as one group per namespace
(group commit, as the writer thread does). Results come back in commit order;
the server publishes each group's ChangeSets before it resolves the writes.

If the child dies, the writes it had not answered fail with ``unavailable`` (they
may or may not have committed), the namespaces it served are reported lost (their
realtime clients start over) and the next write starts a new child.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, Protocol

from rtdb.core import ipc
from rtdb.core.changes import decode_changeset
from rtdb.core.errors import InvalidData, RtdbError, Unavailable
from rtdb.core.ipc import (
    Answer,
    CloseCommand,
    Command,
    CompactCommand,
    Compacted,
    Done,
    Failed,
    Group,
    MetaCommand,
    OpenCommand,
    PriorityCommand,
    Request,
    RulesCommand,
    SetCommand,
    UpdateCommand,
    Written,
    YdocCommand,
)
from rtdb.core.path import Path
from rtdb.engine.access import RulesAccess
from rtdb.engine.writes import WriteResult, Writes
from rtdb.process.child import child_config, spawn
from rtdb.realtime.relay import FrameReader, frame
from rtdb.rules import Ruleset
from rtdb.storage.space import SpacePolicy
from rtdb.storage.sqlite import MAX_BATCH, GroupWriter, Op
from rtdb.storage.store import CompactReport, Store

log = logging.getLogger("rtdb.engine.writer")

CONTROL = None  # the namespace of requests about the writer itself (RulesCommand: the default rules)
STOP_TIMEOUT_S = 30.0
FLUSH_AT = 64
"""Requests per frame at most: a busy connection's writes reach the child in small frames, so
it commits one group while the server decodes the next (one big frame would make the two
processes take turns)."""


@dataclass(frozen=True, slots=True)
class WriterHooks:
    """What the engine gives its writer (:meth:`Writer.bind`)."""

    writes: Writes
    """Runs a command in a transaction (preconditions, server values, rules, rows); its
    ``shared``: other processes write the same namespaces, keep every commit in the change log."""
    default_rules: Callable[[], str]
    """The server-wide rules source now."""
    on_commit: Callable[[list[WriteResult]], None]
    """Publish a commit group's results (before the writes are acknowledged)."""
    on_lost: Callable[[str], None]
    """Commits of this namespace may never be published."""


class Writer(Protocol):
    """Runs the engine's write commands, each namespace's in commit order. To add one,
    implement these members and give it to :class:`~rtdb.engine.engine.Engine` (``writer=``)."""

    @property
    def in_process(self) -> bool:
        """Whether the commands run in this process's stores: they then open with their writer."""

    @property
    def pid(self) -> int | None:
        """The process the commands run in, if it is another one and it runs."""

    def bind(self, hooks: WriterHooks) -> None:
        """Called once by the engine that owns this writer, before any other call."""

    async def open(self, ns: str) -> None:
        """``ns`` is being opened (its file is created where it does not exist)."""

    async def run(self, ns: str, store: Store, command: Command) -> Any:
        """Run ``command`` on ``ns`` (whose open store is ``store``); its result once committed."""

    async def release(self, ns: str) -> None:
        """Close what the writer holds of ``ns`` (it is being dropped)."""

    async def compact(self, ns: str, store: Store) -> CompactReport:
        """Give ``ns``'s free pages back between write groups."""

    async def set_default_rules(self, source: str) -> None:
        """The server-wide rules changed: later writes are checked with them."""

    async def close(self) -> None:
        """Wait for the writes in flight, then stop."""


def targets(command: Command) -> tuple[Path, ...]:
    """The paths a write command writes (a hint for the store: :meth:`Store.write`)."""
    if isinstance(command, (SetCommand, PriorityCommand, YdocCommand)):
        return (command.path,)
    if isinstance(command, UpdateCommand):
        return tuple(target for target, _ in command.items)
    return ()


class InProcessWriter:
    """Each command runs in its namespace's store, on the store's writer (group commit)."""

    in_process = True
    pid = None

    def __init__(self) -> None:
        self.writes: Writes | None = None

    def bind(self, hooks: WriterHooks) -> None:
        self.writes = hooks.writes

    async def open(self, ns: str) -> None:
        pass  # the store opens its own writer

    async def run(self, ns: str, store: Store, command: Command) -> Any:
        assert self.writes is not None, "bind() first"
        return await store.write(functools.partial(self.writes.run, ns, command), paths=targets(command))

    async def release(self, ns: str) -> None:
        pass  # the engine closes the store

    async def compact(self, ns: str, store: Store) -> CompactReport:
        return await store.compact()

    async def set_default_rules(self, source: str) -> None:
        pass  # the writes read the engine's rules

    async def close(self) -> None:
        pass


def _pack(messages: list[Request] | list[Group]) -> bytes:
    return frame(ipc.encode(messages))


class WriterProcess:
    """The server's side: starts the child, sends it write commands, hands back results."""

    in_process = False

    def __init__(self, data_dir: FsPath, *, synchronous: str, space: SpacePolicy | None = None) -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous
        self.space = space if space is not None else SpacePolicy()
        self._hooks: WriterHooks | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._link: _Link | None = None
        self._starting: asyncio.Future[None] | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._outgoing: list[Request] = []
        self._next_id = 0
        self._flush_scheduled = False
        self._closing = False

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return proc.pid if proc is not None and self._link is not None and proc.poll() is None else None

    def bind(self, hooks: WriterHooks) -> None:
        self._hooks = hooks

    @property
    def hooks(self) -> WriterHooks:
        if self._hooks is None:
            raise RuntimeError("the writer process is not bound to an engine (bind() first)")
        return self._hooks

    # -- requests ---------------------------------------------------------------------
    async def open(self, ns: str) -> None:
        await self.write(ns, OpenCommand())  # the child creates the file

    async def run(self, ns: str, store: Store, command: Command) -> Any:
        return await self.write(ns, command)

    async def release(self, ns: str) -> None:
        await self.write(ns, CloseCommand())

    async def compact(self, ns: str, store: Store) -> CompactReport:
        report: CompactReport = await self.write(ns, CompactCommand())
        return report

    async def write(self, ns: str, command: Command) -> Any:
        """Run ``command`` for namespace ``ns`` in the child; its result once committed."""
        if self._link is None:
            await self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._next_id += 1
        rid = self._next_id
        self._pending[rid] = (ns, future)
        self._send(rid, ns, command)
        return await future

    async def set_default_rules(self, source: str) -> None:
        """The server-wide rules changed: the child checks later writes with them."""
        if self._link is not None:
            self._send(0, CONTROL, RulesCommand(source))

    def _send(self, rid: int, ns: str | None, command: Command) -> None:
        outgoing = self._outgoing
        outgoing.append(Request(rid, ns, command))
        if len(outgoing) >= FLUSH_AT:
            self._flush()  # the child starts on these while the loop decodes the rest
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Everything asked for since goes to the child in one frame (once per loop turn,
        or every ``FLUSH_AT`` requests)."""
        self._flush_scheduled = False
        batch, self._outgoing = self._outgoing, []
        if not batch or self._link is None:
            return
        try:
            data = _pack(batch)
        except (OverflowError, TypeError, ValueError):
            data = self._pack_each(batch)
        self._link.transport.write(data)

    def _pack_each(self, batch: list[Request]) -> bytes:
        """A batch that msgpack refused as a whole: the requests it can carry go, the others
        fail at once (none may wait for an answer that cannot come)."""
        kept: list[Request] = []
        for request in batch:
            try:
                _pack([request])
            except (OverflowError, TypeError, ValueError) as exc:
                pending = self._pending.pop(request.id, None)
                if pending is not None and not pending[1].done():
                    pending[1].set_exception(InvalidData(f"The request cannot reach the writer process: {exc}"))
                continue
            kept.append(request)
        return _pack(kept) if kept else b""

    def _received(self, groups: list[Group]) -> None:
        for group in groups:
            committed = group.committed
            outcomes: list[tuple[asyncio.Future[Any] | None, BaseException | None, Any]] = []
            published: list[WriteResult] = []
            for answer in group.answers:
                _, future = self._pending.pop(answer.id, (None, None))
                error: RtdbError | None = ipc.error_of(answer) if isinstance(answer, Failed) else None
                if committed is None:
                    error = Unavailable("The write was not committed")
                result: Any = None
                if error is None:
                    if isinstance(answer, Written):
                        encoded = answer.encoded
                        changeset = decode_changeset(encoded) if encoded is not None else None
                        result = WriteResult(answer.node, changeset, encoded)
                        if changeset is not None:
                            published.append(result)
                    elif isinstance(answer, Compacted):
                        result = CompactReport(answer.bytes_before, answer.bytes_after, answer.pages_freed,
                                               answer.auto_vacuum, answer.wal_truncated)
                outcomes.append((future, error, result))
            if committed and published:
                self.hooks.on_commit(published)
            for future, failure, result in outcomes:
                if future is None or future.done():
                    continue
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(result)

    # -- lifetime ---------------------------------------------------------------------
    async def _start(self) -> None:
        if self._closing:
            raise Unavailable("The database is not open")
        if self._starting is not None:
            await asyncio.shield(self._starting)
            return
        loop = asyncio.get_running_loop()
        self._starting = loop.create_future()
        parent_end, child_end = socket.socketpair()
        try:
            await self._reap()
            config = {"fd": child_end.fileno(), "data_dir": str(self.data_dir), "synchronous": self.synchronous,
                      "rules": self.hooks.default_rules(), "shared": self.hooks.writes.shared,
                      "space": {"vacuum_free_percent": self.space.vacuum_free_percent,
                                "wal_truncate_bytes": self.space.wal_truncate_bytes},
                      "log_level": logging.getLogger("rtdb").getEffectiveLevel()}
            try:
                self.proc = spawn("rtdb.engine.writer", config, pass_fds=(child_end.fileno(),))
            except BaseException:
                parent_end.close()
                raise
            finally:
                child_end.close()
            _, link = await loop.connect_accepted_socket(lambda: _Link(self), parent_end)
            self._link = link
            log.info("writer process started (pid %d)", self.proc.pid)
            self._starting.set_result(None)
        except BaseException as exc:
            self._starting.set_exception(exc)
            self._starting.exception()
            raise
        finally:
            self._starting = None

    async def _reap(self) -> None:
        """Wait for the previous child, whose link is gone, to be gone too (killing it if it
        lingers), so that no process is left unwaited when its successor starts."""
        old, self.proc = self.proc, None
        if old is None or old.poll() is not None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, old.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            old.kill()
            await asyncio.get_running_loop().run_in_executor(None, old.wait)

    def _lost(self, link: _Link) -> None:
        """The child's end closed: expected when stopping, else it died."""
        if link is not self._link:
            return
        self._link = None
        if self._closing:
            return
        code = self.proc.poll() if self.proc is not None else None
        log.error("the writer process stopped (exit code %s); %d unanswered writes fail", code, len(self._pending))
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(Unavailable("The writer process stopped: the write may not have been committed"))
        for ns in sorted({ns for ns, _ in pending.values()}):  # a commit whose answer was lost is one of these
            self.hooks.on_lost(ns)

    async def close(self) -> None:
        """Wait for the writes in flight, then stop the child (it commits what it has)."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._pending and self._link is not None and time.monotonic() < deadline:
            await asyncio.wait([f for _, f in self._pending.values()], timeout=deadline - time.monotonic())
        self._closing = True
        link, self._link = self._link, None
        if link is not None:
            link.transport.close()
        proc = self.proc
        if proc is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the writer process did not stop; killing it")
                proc.kill()
                proc.wait()


class _Link(asyncio.Protocol):
    def __init__(self, owner: WriterProcess) -> None:
        self.owner = owner
        self.reader = FrameReader()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        for payload in self.reader.feed(data):
            self.owner._received(ipc.decode_groups(payload))

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self)


def _compacted(rid: int, report: CompactReport) -> Compacted:
    return Compacted(rid, report.bytes_before, report.bytes_after, report.pages_freed, report.auto_vacuum,
                     report.wal_truncated)


# -- the child ----------------------------------------------------------------------------
class _Child:
    """Owns the write connections; applies what arrives together as one group per namespace."""

    def __init__(self, data_dir: FsPath, synchronous: str, rules: str, shared: bool,
                 space: SpacePolicy | None = None) -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous
        self.space = space
        self.access = RulesAccess(Ruleset.compile(rules))
        self.writes = Writes(self.access, shared=shared, encode=True)
        self.writers: dict[str, GroupWriter] = {}

    def writer(self, ns: str) -> GroupWriter:
        writer = self.writers.get(ns)
        if writer is None:
            writer = GroupWriter(self.data_dir / f"{ns}.sqlite", synchronous=self.synchronous, space=self.space)
            writer.open()
            assert writer.txn is not None
            source = writer.txn.meta("rules")
            if source is not None:
                self.access.set_namespace(ns, Ruleset.compile(source))
            self.writers[ns] = writer
        return writer

    def handle(self, requests: list[Request], answer: Callable[[Group], None]) -> None:
        """Apply ``requests`` in order; ``answer`` gets each group transaction's outcome."""
        groups: dict[str, list[Op]] = {}
        for request in requests:
            rid, ns, command = request.id, request.ns, request.command
            if ns is CONTROL:
                assert isinstance(command, RulesCommand)
                self._commit(groups, answer)  # later writes see the new rules, earlier ones the old
                self.access.set_default(Ruleset.compile(command.source))
                continue
            if isinstance(command, CloseCommand):  # the namespace is being dropped: let go of its file
                self._commit(groups, answer)
                abandoned = self._close(ns)
                gone = Unavailable("The namespace was closed before the compaction finished")
                answer(Group(True, [Done(rid), *(ipc.failed(a, gone) for a in abandoned)]))
                continue
            if isinstance(command, CompactCommand):  # answered by maintain() once done
                self._commit(groups, answer)
                try:
                    self.writer(ns).request_compact(rid)
                except Exception as exc:
                    log.exception("compacting %s failed", ns)
                    error = exc if isinstance(exc, RtdbError) else RtdbError("Internal server error")
                    answer(Group(None, [ipc.failed(rid, error)]))
                continue
            groups.setdefault(ns, []).append(Op(self._fn(ns, command), rid))
        self._commit(groups, answer)

    def _close(self, ns: str) -> list[Any]:
        """Close the namespace's file; the ids of compactions that will not finish."""
        writer = self.writers.pop(ns, None)
        self.access.forget_namespace(ns)
        if writer is None:
            return []
        abandoned = writer.space.abandon() if writer.space is not None else []
        writer.close()
        return abandoned

    def busy(self) -> bool:
        return any(w.space is not None and w.space.busy for w in self.writers.values())

    def due_in(self) -> float | None:
        """Seconds until some namespace has vacuum or checkpoint work (``None``: none)."""
        due = [d for w in self.writers.values() if w.space is not None and (d := w.space.due_in()) is not None]
        return min(due) if due else None

    def maintain(self, answer: Callable[[Group], None]) -> None:
        """One step of due work in each namespace that has some; finished compactions are answered."""
        for writer in list(self.writers.values()):
            if writer.space is not None and writer.space.due_in() == 0:
                done = writer.maintain()
                if done:
                    answer(Group(True, [_compacted(rid, report) for rid, report in done]))

    def _fn(self, ns: str, command: Command) -> Callable[[Any], Any]:
        run = self.writes.run
        if isinstance(command, OpenCommand):  # the server is about to read the file: make sure it exists
            return lambda txn: None
        if isinstance(command, MetaCommand) and command.name == "rules":
            ruleset = Ruleset.compile(command.value)

            def deploy(txn: Any) -> None:
                run(ns, command, txn)
                self.access.set_namespace(ns, ruleset)

            return deploy
        return lambda txn: run(ns, command, txn)

    def _commit(self, groups: dict[str, list[Op]], answer: Callable[[Group], None]) -> None:
        for ns, ops in groups.items():
            for start in range(0, len(ops), MAX_BATCH):
                answer(self._commit_group(ns, ops[start : start + MAX_BATCH]))
        groups.clear()

    def _commit_group(self, ns: str, batch: list[Op]) -> Group:
        committed: bool | None
        try:
            committed = self.writer(ns).apply(batch)
        except Exception:  # opening the file or the commit itself failed: nothing of the batch happened
            log.exception("group commit failed")
            committed = None
        answers: list[Answer] = []
        for op in batch:
            error, result = op.error, op.result
            if error is not None:
                if not isinstance(error, RtdbError):
                    error = RtdbError("Internal server error")  # logged where it was raised
                answers.append(ipc.failed(op.token, error))
            elif isinstance(result, WriteResult):
                answers.append(Written(op.token, result.node, result.encoded))
            else:
                answers.append(Done(op.token))
        return Group(committed, answers)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def child_main(config: dict[str, Any]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops it by closing the socket
    logging.basicConfig(level=config.get("log_level", logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s[writer %(process)d]: %(message)s")
    sock = socket.socket(fileno=config["fd"])
    space = SpacePolicy(**config.get("space", {}))
    child = _Child(FsPath(config["data_dir"]), config["synchronous"], config["rules"], config["shared"], space)
    gc.freeze()  # start-up objects stay out of every collection (as in the server: rtdb/runner/server.py)
    reader = FrameReader()

    def answer(group: Group) -> None:
        sock.setblocking(True)
        sock.sendall(_pack([group]))

    try:
        while True:
            due = child.due_in()  # vacuum and checkpoint steps run while no request waits
            sock.settimeout(due)
            try:
                data = sock.recv(1 << 20)
            except (TimeoutError, BlockingIOError):
                child.maintain(answer)
                continue
            if not data:
                return 0
            requests: list[Request] = []
            for payload in reader.feed(data):
                requests += ipc.decode_requests(payload)
            sock.setblocking(False)
            try:  # whatever else has arrived joins this group
                while more := sock.recv(1 << 20):
                    for payload in reader.feed(more):
                        requests += ipc.decode_requests(payload)
            except BlockingIOError:
                pass
            child.handle(requests, answer)
            if child.busy():
                child.maintain(answer)  # requests keep coming: pending work gets a step after each round
    finally:
        child.close()


if __name__ == "__main__":
    raise SystemExit(child_main(child_config()))
