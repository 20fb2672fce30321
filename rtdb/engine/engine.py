"""The engine: the only place where storage, rules and the change feed meet.

Every transport calls these coroutines with the caller's identity. Writes go to
the writer as commands (:mod:`rtdb.engine.writes`), run in the store's writer
thread or in the writer process (`--write-process`): the precondition, server
values, rules and the write itself are decided in commit order; the ChangeSet
of each committed write is published to the feed before the write is
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, TypeVar

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.changes import ChangeSet, decode_changeset
from rtdb.core.errors import IndexNotDefined, NoNamespace, PermissionDenied, RtdbError, Unavailable
from rtdb.core.indexspec import child_spec, names, order_child
from rtdb.core.ipc import (
    DisconnectCommand,
    IndexesCommand,
    MetaCommand,
    PriorityCommand,
    SetCommand,
    UpdateCommand,
    YdocCommand,
)
from rtdb.core.path import PRIORITY_KEY, Path
from rtdb.core.pushid import PushIdGenerator
from rtdb.core.query import QuerySpec
from rtdb.core.servervalue import resolve
from rtdb.core.value import Node, normalize, to_plain
from rtdb.engine.access import RulesAccess
from rtdb.engine.ondisconnect import DisconnectOp
from rtdb.engine.writer import InProcessWriter, Writer, WriterHooks
from rtdb.engine.writes import (
    Command,
    Disconnected,
    WriteResult,
    Writes,
    check,
    parse_updates,
    prioritized,
    written_priority,
)
from rtdb.engine.ydoc import YdocResult, ydoc_key
from rtdb.realtime.broker import Broker, InProcessBroker
from rtdb.rules import Decision, Ruleset
from rtdb.storage.files import DROP_WAIT_S
from rtdb.storage.group import StoreStats
from rtdb.storage.space import SpacePolicy
from rtdb.storage.sqlite_backend import SqliteBackend
from rtdb.storage.store import Backend, CompactReport, Store, Txn

log = logging.getLogger("rtdb.engine")
T = TypeVar("T")

_NAMESPACE_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")  # whole names only (fullmatch)
IDLE_CLOSE_S = 60.0
"""A namespace nobody has read or written for this long closes its files (reopened on use)."""
DROP_GATE_S = DROP_WAIT_S + 5.0
"""Longest that another process's drop keeps this one from opening the namespace again."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    node: Node
    seq: int


def check_namespace(ns: str) -> None:
    """A namespace names a file: letters, digits, ``_`` and ``-``, the whole name and nothing else."""
    if not _NAMESPACE_OK.fullmatch(ns):
        raise NoNamespace(f"Invalid namespace {ns!r}")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Engine:
    def __init__(
        self,
        data_dir: FsPath,
        *,
        access: RulesAccess,
        clock: Callable[[], int] = _now_ms,
        feed: Broker | None = None,
        synchronous: str = "FULL",
        indexes: Mapping[Path, tuple[Path, ...]] | None = None,
        require_indexes: bool = False,
        writer: Writer | None = None,
        idle_close_s: float = IDLE_CLOSE_S,
        backend: Backend | None = None,
        space: SpacePolicy | None = None,
        database_url: str | None = None,
    ) -> None:
        """``feed``: the broker that carries commits to listeners (:mod:`rtdb.realtime.broker`);
        one between processes (`rtdb serve --workers`, a cluster) makes the engine *shared*:
        other processes write the same namespaces, so every commit is also kept in the
        namespace's change log for them. ``writer``: where write commands run (default: in
        this process's stores; :class:`~rtdb.engine.writer.WriterProcess` for `--write-process`). ``backend``:
        where namespaces live (default: PostgreSQL at ``database_url`` if given, else SQLite files
        in ``data_dir``). ``space``: when the SQLite writers give space back (:mod:`rtdb.storage.space`)."""
        self.data_dir = data_dir
        self.access = access
        self.clock = clock
        self.feed: Broker = feed if feed is not None else InProcessBroker()
        self.writer: Writer = writer if writer is not None else InProcessWriter()
        self.synchronous = synchronous
        self.space = space if space is not None else SpacePolicy()
        self._owned_backend: Any = None  # made here, closed here
        if backend is None and database_url is not None:
            if not self.writer.in_process:
                raise ValueError("the writer process drives SQLite files: not with a PostgreSQL database")
            from rtdb.storage.postgres import PostgresBackend  # psycopg is an optional dependency

            backend = self._owned_backend = PostgresBackend(database_url)
        self.backend: Backend = (backend if backend is not None
                                 else SqliteBackend(data_dir, synchronous=synchronous, space=self.space))
        self.indexes = dict(indexes or {})
        self.require_indexes = require_indexes
        self.shared = self.feed.shared
        self.push_ids = PushIdGenerator()
        self._stores: dict[str, Store] = {}
        self._opening: dict[str, asyncio.Future[Store]] = {}
        self._empty = self.backend.empty()  # what a namespace that does not exist reads as
        self._admitting: dict[str, asyncio.Future[None]] = {}  # the last write waiting to open its namespace
        self._busy: dict[str, int] = {}  # operations under way per open namespace
        self._last_used: dict[str, float] = {}
        self._validating: asyncio.Future[None] | None = None  # settles once that write (and all before it) is queued
        self._dropping: dict[str, asyncio.Future[None]] = {}  # namespaces being dropped: nothing opens them
        self.idle_close_s = idle_close_s
        self.write_outcomes: dict[str, int] = {}
        """Write commands run, by outcome: ok, denied, refused, unavailable, error (``/metrics``)."""
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.feed.on_announce(self._announced)
        # a backend other processes may write (PostgreSQL) keeps every commit in its change log
        self.writes = Writes(access, shared=self.shared or getattr(self.backend, "logs_changes", False))
        self.on_lost: Callable[[str], None] = lambda ns: None
        """Called when commits of ``ns`` may never reach this process's listeners."""
        self.on_dropped: Callable[[str], None] = lambda ns: None
        """Called when ``ns`` is dropped (here or by another process): its realtime clients start over."""
        self.write_guard: Callable[[], None] | None = None
        """Called before each write; raises to refuse it (a cluster node that lost its lease)."""
        self.writer.bind(WriterHooks(
            writes=self.writes, default_rules=lambda: self.access.default.source,
            on_commit=self._publish, on_lost=lambda ns: self.on_lost(ns),
        ))

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid while one runs (`--write-process`)."""
        return self.writer.pid

    # -- namespaces -----------------------------------------------------------
    async def store(self, ns: str) -> Store:
        store = self._stores.get(ns)
        if store is not None:
            return store
        check_namespace(ns)
        if ns in self._dropping:
            await self._dropped(ns)
            store = self._stores.get(ns)
            if store is not None:
                return store
        pending = self._opening.get(ns)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Store] = asyncio.get_running_loop().create_future()
        self._opening[ns] = future
        try:
            store = self.backend.store(ns, writer=self.writer.in_process)
            subscribed = self.feed.open_namespace(ns)
            if subscribed is not None:
                await subscribed  # the broker receives other nodes' commits of ns before its seq is read
            await self.writer.open(ns)
            await store.open()
            store.on_commit = self._publish
            epoch, seq = await self._head(ns, store)
            self.feed.start_namespace(ns, seq, functools.partial(self._read_log, ns), epoch=epoch)
            source = await store.read(lambda txn: txn.meta("rules"))
            if source is not None:
                self.access.set_namespace(ns, Ruleset.compile(source))
            await self._declare_indexes(ns, store)
            self._stores[ns] = store
            self._last_used[ns] = time.monotonic()
            if self._sweeper is None and self.idle_close_s > 0:
                self._sweeper = asyncio.get_running_loop().create_task(self._close_idle())
            future.set_result(store)
            return store
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._opening[ns]

    async def _head(self, ns: str, store: Store) -> tuple[str | None, int]:
        """The history (epoch, if the backend names one: PostgreSQL) and last commit of open ``ns``."""
        heads = getattr(self.backend, "heads", None)
        if heads is not None:
            found: dict[str, tuple[str, int]] = await asyncio.to_thread(heads, [ns])
            if ns in found:
                return found[ns]
        return None, await store.read(lambda txn: txn.committed_seq())

    def open_namespaces(self) -> list[str]:
        """The namespaces whose files this process holds open now."""
        return sorted(self._stores)

    def store_stats(self) -> list[tuple[str, StoreStats]]:
        """``(ns, commit-group counters)`` of every namespace open in this process (``/metrics``);
        namespaces written by the writer process keep theirs there."""
        return [(ns, stats) for ns, store in list(self._stores.items())
                if (stats := getattr(store, "stats", None)) is not None]

    def exists(self, ns: str) -> bool:
        """Whether the namespace has a database (an invalid name raises :class:`NoNamespace`)."""
        if ns in self._stores or ns in self._opening:
            return True
        check_namespace(ns)
        return self.backend.exists(ns)

    async def _reading(self, ns: str, fn: Callable[[Txn], T]) -> T:
        """Run a read; a namespace that does not exist reads as an empty database and is not created."""
        if ns in self._dropping:
            await self._dropped(ns)
        if not self.exists(ns):
            result = await self._empty.read(fn)
            if not self.shared or not await self._watch_absent(ns):
                return result
        store = self._stores.get(ns) or await self.store(ns)
        self._busy[ns] = self._busy.get(ns, 0) + 1
        try:
            return await store.read(fn)
        finally:
            self._busy[ns] -= 1
            self._last_used[ns] = time.monotonic()

    async def _watch_absent(self, ns: str) -> bool:
        """Shared mode, after an allowed read of a namespace that does not exist: have the
        broker keep the commits another process makes to it from now on (its listeners may
        have just subscribed). ``True`` if the file appeared meanwhile: read it instead."""
        subscribed = self.feed.open_namespace(ns)  # from here on, what arrives for ns is kept
        if subscribed is not None:
            await subscribed
        if self.backend.exists(ns):
            return True
        self.feed.start_namespace(ns, 0, functools.partial(self._read_log, ns))
        return False

    async def _read_log(self, ns: str, after: int) -> list[ChangeSet]:
        """The committed ChangeSets of ``ns`` after ``after``, from its change log."""
        store = self._stores.get(ns) or await self.store(ns)
        return [decode_changeset(b) for b in await store.read(lambda txn: txn.changes_after(after))]

    async def _close_idle(self) -> None:
        """Close the files of namespaces that nobody has used for ``idle_close_s``."""
        while True:
            await asyncio.sleep(max(0.05, self.idle_close_s / 4))
            cutoff = time.monotonic() - self.idle_close_s
            for ns, store in list(self._stores.items()):
                if (self._busy.get(ns, 0) == 0 and self._last_used.get(ns, 0.0) < cutoff and ns not in self._opening
                        and ns not in self._dropping):
                    del self._stores[ns]
                    self._busy.pop(ns, None)
                    self._last_used.pop(ns, None)
                    try:
                        await store.close()
                    except Exception:
                        log.exception("closing idle namespace %s failed", ns)

    async def _declare_indexes(self, ns: str, store: Store) -> None:
        wanted = [(pattern, child) for pattern, children in self.indexes.items() for child in children]
        wanted += self.access.declared_indexes(ns)
        if wanted:
            await self._run(ns, IndexesCommand(wanted), store)

    # -- dropping and compacting ----------------------------------------------
    async def drop(self, ns: str, *, caller: Caller) -> int | None:
        """Delete namespace ``ns``, admins only: its realtime clients are told it is gone
        (:attr:`on_dropped`), it is closed here and in every other process (told through the
        broker), then its data is deleted. The bytes freed, ``None`` if it did not exist.
        Operations that arrive meanwhile wait, then see a namespace that does not exist; a
        write afterwards creates it anew, as any first write does."""
        if not caller.admin:
            raise PermissionDenied("Permission denied")
        check_namespace(ns)
        backend = self.backend
        while ns in self._dropping:  # a drop of it under way here: after it, this one finds less
            await self._dropped(ns)
        self._close_gate(ns)
        self.feed.announce("drop", ns)
        try:
            await self._let_go(ns)
            await self.writer.release(ns)
            freed = await asyncio.to_thread(backend.drop, ns)
        finally:
            self.feed.forget_namespace(ns)  # commits of the old file that arrived meanwhile are not kept
            self.feed.announce("dropped", ns)
            self._open_gate(ns)
        log.info("namespace %s dropped (%s bytes)", ns, freed)
        return freed

    async def compact(self, ns: str, *, caller: Caller) -> CompactReport:
        """Give every free page of ``ns`` back and truncate its WAL, admins only, in steps
        between write groups (a file created before incremental auto-vacuum only gets the
        checkpoint: ``rtdb namespace compact`` rewrites it offline)."""
        if not caller.admin:
            raise PermissionDenied("Permission denied")
        if ns in self._dropping:
            await self._dropped(ns)
        if not self.exists(ns):
            raise NoNamespace(f"Namespace {ns} does not exist")
        store = self._stores.get(ns) or await self.store(ns)
        self._busy[ns] = self._busy.get(ns, 0) + 1
        try:
            return await self.writer.compact(ns, store)
        finally:
            self._busy[ns] -= 1
            self._last_used[ns] = time.monotonic()

    def _close_gate(self, ns: str) -> asyncio.Future[None]:
        gate = self._dropping.get(ns)
        if gate is None:
            gate = self._dropping[ns] = asyncio.get_running_loop().create_future()
        return gate

    def _open_gate(self, ns: str) -> None:
        gate = self._dropping.pop(ns, None)
        if gate is not None and not gate.done():
            gate.set_result(None)

    async def _dropped(self, ns: str) -> None:
        """Wait until a drop of ``ns`` under way is over."""
        gate = self._dropping.get(ns)
        if gate is not None:
            await asyncio.shield(gate)

    async def _let_go(self, ns: str) -> None:
        """Close ``ns`` in this process for a drop: its clients start over, its deployed
        rules are forgotten, its store closes (writes already queued commit first)."""
        pending = self._opening.get(ns)
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
        store = self._stores.pop(ns, None)
        self._last_used.pop(ns, None)
        self.feed.forget_namespace(ns)
        try:
            self.on_dropped(ns)
        except Exception:
            log.exception("telling the clients of %s that it was dropped failed", ns)
        self.access.forget_namespace(ns)
        if store is not None:
            await store.close()

    async def _let_go_for_another(self, ns: str) -> None:
        """Another process drops ``ns``: close it here, and open it again only once that
        process says it is done (or after :data:`DROP_GATE_S`, should it never say)."""
        gate = self._close_gate(ns)
        timer = asyncio.get_running_loop().call_later(DROP_GATE_S, self._open_gate, ns)
        gate.add_done_callback(lambda _: timer.cancel())
        try:
            await self._let_go(ns)
        except Exception:
            log.exception("closing %s for a drop failed", ns)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- rules ----------------------------------------------------------------
    def rules_source(self, ns: str) -> str:
        return self.access.ruleset(ns).source

    async def deploy_rules(self, ns: str, source: str, *, caller: Caller, dry_run: bool = False) -> None:
        """Compile and install rules for one namespace (persisted in its file); admins only.
        A source that does not compile raises :class:`RulesError` and changes nothing;
        ``dry_run`` stops after compiling (REST's ``?dryRun=true``)."""
        if not caller.admin:
            raise PermissionDenied("Permission denied")
        ruleset = Ruleset.compile(source)
        if dry_run:
            return
        store = self._stores.get(ns) or await self.store(ns)
        await self._run(ns, MetaCommand("rules", source), store)
        self.access.set_namespace(ns, ruleset)
        await self._declare_indexes(ns, store)
        self.feed.announce("rules", ns)

    def _announced(self, kind: str, ns: str) -> None:
        """Another process deployed rules for ``ns`` (load them from the file), or is dropping
        it (let go of it until it is done)."""
        if kind == "drop":
            self._spawn(self._let_go_for_another(ns))
            return
        if kind == "dropped":
            self._open_gate(ns)
            return
        if kind != "rules" or ns not in self._stores:
            return  # a namespace opened later reads its rules from the file then
        task = asyncio.get_running_loop().create_task(self._reload_rules(ns))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_rules(self, ns: str) -> None:
        try:
            source = await self._reading(ns, lambda txn: txn.meta("rules"))
            if source is not None:
                self.access.set_namespace(ns, Ruleset.compile(source))
        except Exception:
            log.exception("reloading the rules of %s failed", ns)

    async def reload_default_rules(self, source: str) -> None:
        """Compile and swap in the server-wide rules (the rules file changed) and build the
        indexes they declare. A source that does not compile raises :class:`RulesError`
        and the previous rules stay."""
        ruleset = Ruleset.compile(source)
        self.access.set_default(ruleset)
        await self.writer.set_default_rules(ruleset.source)
        for ns, store in list(self._stores.items()):
            await self._declare_indexes(ns, store)

    def is_indexed(self, ns: str, path: Path, query: QuerySpec | None) -> bool:
        """Whether a query's order has a declared index (``.indexOn`` or ``--index``);
        key and priority orders need none. Unindexed queries still run (with a warning)."""
        want = order_child(query) if query is not None else None
        if want is None:
            return True
        if child_spec(want) in self.access.ruleset(ns).index_on(path):
            return True
        return any(names(pattern, path) and want in children for pattern, children in self.indexes.items())

    def check_indexed(self, ns: str, path: Path, query: QuerySpec | None) -> None:
        """Raise Firebase's :class:`IndexNotDefined` unless :meth:`is_indexed`."""
        if query is not None and not self.is_indexed(ns, path, query):
            self._missing_index(path, query)

    async def check_read(self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None) -> bool:
        """Whether ``caller`` may (still) read ``path``: for revoking listens after rules change."""
        now = self.clock()
        return await self._reading(ns, lambda txn: self.access.can_read(ns, caller, path, txn, now, query).allowed)

    async def explain(self, ns: str, op: str, path: Path, value: Any = None, *, caller: Caller) -> Decision:
        """The decision and trace the rules give for a read, set or update, without doing it."""
        return await self._decide(ns, op, path, value, caller, explain=True)

    async def check_write(self, ns: str, op: str, path: Path, value: Any, *, caller: Caller) -> None:
        """Raise :class:`PermissionDenied` unless the rules would allow this set or update now
        (onDisconnect ops are checked when registered, as Firebase does, and again when run)."""
        check(await self._decide(ns, op, path, value, caller, explain=False))

    async def _decide(self, ns: str, op: str, path: Path, value: Any, caller: Caller, *, explain: bool) -> Decision:
        now = self.clock()

        def run(txn: Txn) -> Decision:
            if op == "read":
                return self.access.can_read(ns, caller, path, txn, now, None, explain=explain)
            if op == "update":
                items = parse_updates(path, value)
                rel = {paths.relative(path, t): resolve(n, t, now, txn.node) for t, n in items}
                return self.access.can_update(ns, caller, path, rel, txn, now, explain=explain)
            if path and path[-1] == PRIORITY_KEY:  # a priority alone: the rules see the node with it
                at = path[:-1]
                node = prioritized(txn.node(at), written_priority(value, at), at, now, txn.node)
                return self.access.can_write(ns, caller, at, node, txn, now, explain=explain)
            node = resolve(normalize(value, path), path, now, txn.node)
            return self.access.can_write(ns, caller, path, node, txn, now, explain=explain)

        return await self._reading(ns, run)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.writer.close()
        for store in list(self._stores.values()):
            await store.close()
        self._stores.clear()
        self._empty.close()
        if self._owned_backend is not None:
            self._owned_backend.close()

    def _publish(self, results: list[Any]) -> None:
        for result in results:
            if isinstance(result, WriteResult) and result.changeset is not None:
                self.feed.publish(result.changeset, result.encoded)
            elif isinstance(result, Disconnected):  # onDisconnect operations: each a write of its own
                for ran in result.results:
                    if ran.changeset is not None:
                        self.feed.publish(ran.changeset, ran.encoded)
            elif isinstance(result, YdocResult) and result.write is not None and result.write.changeset is not None:
                self.feed.publish(result.write.changeset, result.write.encoded)  # a Yjs document's mirror

    # -- reads ----------------------------------------------------------------
    async def read(
        self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None, plain: bool = False,
        require_index: bool = False, raw: bool = False,
    ) -> ReadResult:
        """The node at ``path`` (or the children a query selects) and the commit sequence
        number it reflects. With ``plain`` a plain read comes as a REST GET shows it
        (:func:`rtdb.core.value.to_plain`), built in the same pass. ``require_index``: an
        unindexed query is refused (after the read check) even without ``require_indexes``.
        ``raw``: the caller only encodes the node as JSON (see :meth:`Txn.node`)."""
        now = self.clock()

        def op(txn: Txn) -> ReadResult:
            check(self.access.can_read(ns, caller, path, txn, now, query))
            if query is None or query.is_default and query.order_by == "priority":
                return ReadResult(txn.node(path, plain=plain, raw=raw), txn.committed_seq())
            index = txn.find_index(path, query)
            if self.require_indexes or require_index:
                self.check_indexed(ns, path, query)
            selected = txn.query(path, query, index)
            node = {k: v for k, v in selected} or None
            return ReadResult(to_plain(node) if plain else node, txn.committed_seq())

        return await self._reading(ns, op)

    async def get(self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None) -> Node:
        return (await self.read(ns, path, caller=caller, query=query)).node

    async def shallow(self, ns: str, path: Path, *, caller: Caller,
                      window: QuerySpec | None = None) -> tuple[Node, list[str]]:
        """A leaf's value, or the keys of an object's children (grandchildren unread); ``window``:
        only a page of them in key order (``shallow=true&limitToFirst=&startAfter=``)."""
        now = self.clock()

        def op(txn: Txn) -> tuple[Node, list[str]]:
            check(self.access.can_read(ns, caller, path, txn, now, None))
            return txn.child_keys(path, window)

        return await self._reading(ns, op)

    async def export(
        self, ns: str, path: Path, write: Callable[[str], None], *, keep_priorities: bool, caller: Caller
    ) -> None:
        """Stream the node at ``path`` as JSON text to ``write`` (called from a reader thread)."""
        now = self.clock()

        def op(txn: Txn) -> None:
            check(self.access.can_read(ns, caller, path, txn, now, None))
            for chunk in txn.export_chunks(path, keep_priorities=keep_priorities):
                write(chunk)

        await self._reading(ns, op)


    # -- writes ---------------------------------------------------------------
    async def set(
        self,
        ns: str,
        path: Path,
        value: Any,
        *,
        caller: Caller,
        if_match: str | None = None,
        if_hash: str | None = None,
    ) -> WriteResult:
        """Replace the node at ``path`` with the decoded JSON ``value`` (``None`` deletes)."""
        if path and path[-1] == PRIORITY_KEY:
            priority = await self._validate(value, written_priority, value, path[:-1])
            return await self._write(ns, PriorityCommand(path[:-1], priority, caller, self.clock()))
        node = await self._validate(value, normalize, value, path)
        return await self._write(ns, SetCommand(path, node, caller, self.clock(), if_match, if_hash))

    async def update(
        self, ns: str, path: Path, updates: Mapping[str, Any], *, caller: Caller, if_hash: str | None = None
    ) -> WriteResult:
        """Apply a multi-path update atomically: each key is a path relative to ``path``."""
        items = await self._validate(updates, parse_updates, path, updates)
        return await self._write(ns, UpdateCommand(path, items, caller, self.clock(), if_hash))

    async def push(self, ns: str, path: Path, value: Any, *, caller: Caller) -> tuple[str, WriteResult]:
        key = self.push_ids.next(self.clock())
        return key, await self.set(ns, path + (key,), value, caller=caller)

    async def _run(self, ns: str, command: Command, store: Store | None = None) -> Any:
        """Run a write command in the writer (thread or process); its result once committed.
        Only a write the rules allow creates a namespace: on one that does not exist, the
        write is first tried on an empty database (and undone); if that fails, so does the
        write, and nothing is created."""
        if self.write_guard is not None:
            self.write_guard()
        if store is None:  # (given: the engine's own commands while it opens the namespace)
            store = self._stores.get(ns)
            if store is None or ns in self._admitting:
                store = await self._admit(ns, command)
        self._busy[ns] = self._busy.get(ns, 0) + 1
        outcome = "error"
        try:
            result = await self.writer.run(ns, store, command)
            outcome = "ok"
            return result
        except PermissionDenied:
            outcome = "denied"
            raise
        except RtdbError as exc:
            outcome = "unavailable" if isinstance(exc, Unavailable) else "refused"
            raise
        finally:
            self.write_outcomes[outcome] = self.write_outcomes.get(outcome, 0) + 1
            self._busy[ns] -= 1
            self._last_used[ns] = time.monotonic()

    async def _admit(self, ns: str, command: Command) -> Store:
        """The open store for a write to a namespace that is not open (or still opening): a
        new namespace is created only by a write the rules allow. Writes pass here one at a
        time, in the order they came, so none overtakes another while the file is opened."""
        before = self._admitting.get(ns)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._admitting[ns] = mine
        try:
            if before is not None:
                await asyncio.shield(before)
            if ns in self._dropping:
                await self._dropped(ns)
            if (isinstance(command, (SetCommand, PriorityCommand, UpdateCommand)) and not command.caller.admin
                    and not self.exists(ns)):
                await self._empty.try_write(functools.partial(self.writes.run, ns, command))
            return self._stores.get(ns) or await self.store(ns)
        finally:  # the caller queues its write before it next yields: then the next one may pass
            mine.set_result(None)
            if self._admitting.get(ns) is mine:
                del self._admitting[ns]

    async def _validate(self, value: Any, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: a write's validation. A large ``value`` is validated in a thread (which
        holds the GIL too, but hands it to the event loop every few milliseconds). Writes still
        reach the writer in the order they came: while one is being validated, those behind it
        wait for it (a connection's writes apply in order)."""
        before = self._validating
        large = _is_large(value)
        if before is None and not large:
            return fn(*args)  # the common case: nothing to wait for
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._validating = mine
        try:
            result = await asyncio.to_thread(fn, *args) if large else fn(*args)
            if before is not None and not before.done():
                await asyncio.shield(before)
            return result
        finally:  # the caller queues its write before it next yields: then the next one may go
            if before is None or before.done():
                self._settle(mine)
            else:  # failed or cancelled before its turn: the ones behind still wait for ``before``
                before.add_done_callback(lambda _: self._settle(mine))

    def _settle(self, validated: asyncio.Future[None]) -> None:
        if not validated.done():
            validated.set_result(None)
        if self._validating is validated:
            self._validating = None

    async def _write(self, ns: str, command: Command) -> WriteResult:
        """Commit a write; return once the local listeners have its ChangeSet (before the ack)."""
        result: WriteResult = await self._run(ns, command)
        if result.changeset is not None:
            pending = self.feed.delivered(result.changeset)
            if pending is not None:
                await pending
        return result

    async def _delivered(self, results: Sequence[WriteResult]) -> None:
        """Wait until the local listeners have the last ChangeSet of ``results`` (so all before it)."""
        last = next((r.changeset for r in reversed(results) if r.changeset is not None), None)
        if last is not None:
            pending = self.feed.delivered(last)
            if pending is not None:
                await pending

    async def take_disconnect(self, ns: str, session_id: str, *, taker: str, owner: str | None = None,
                              upto: int | None = None) -> Disconnected:
        """Take a session's stored onDisconnect operations of ``ns`` and run them, in one group
        transaction (PostgreSQL: :meth:`rtdb.engine.writes.Writes._disconnect`); return once the
        local listeners have their ChangeSets."""
        done: Disconnected = await self._run(ns, DisconnectCommand(session_id, taker, owner, upto, self.clock()))
        await self._delivered(done.results)
        return done

    async def run_disconnect(self, ops: list[DisconnectOp]) -> int:
        """Run operations taken from a :class:`~rtdb.engine.ondisconnect.DisconnectRegistry`
        in order, each as the caller who registered it; one that fails now (denied by the rules,
        invalid) is logged and skipped. How many succeeded."""
        done = 0
        for op in ops:
            try:
                if op.kind == "set":
                    await self.set(op.ns, op.path, op.data, caller=op.caller)
                else:
                    await self.update(op.ns, op.path, op.data, caller=op.caller)
                done += 1
            except RtdbError as exc:
                log.info("onDisconnect %s at %s failed: %s", op.kind, paths.to_str(op.path), exc.code)
            except Exception:
                log.exception("onDisconnect %s at %s failed", op.kind, paths.to_str(op.path))
        return done

    # -- Yjs documents (issue 16; rtdb/engine/ydoc.py, rtdb/engine/yrooms.py) ------------
    async def ydoc_rows(self, ns: str, path: Path, *, caller: Caller, after: int = 0) -> list[tuple[int, bytes]]:
        """The stored rows of the Yjs document at ``path`` numbered above ``after``, if ``caller``
        may read ``path`` (else :class:`PermissionDenied`)."""
        now = self.clock()

        def op(txn: Txn) -> list[tuple[int, bytes]]:
            check(self.access.can_read(ns, caller, path, txn, now, None))
            return txn.ydoc_rows(ydoc_key(path), after)

        return await self._reading(ns, op)

    async def ydoc_write(self, ns: str, path: Path, items: list[tuple[bytes, Caller]]) -> YdocResult:
        """Store Yjs updates (each with its sender) to the document at ``path`` and write its
        mirror; returns once committed and the mirror's ChangeSet reached local listeners."""
        if not self.writer.in_process:
            raise Unavailable("Yjs documents are not served with --write-process")
        result: YdocResult = await self._run(ns, YdocCommand(path, items, self.clock()))
        if result.write is not None:
            await self._delivered([result.write])
        return result

    @staticmethod
    def _missing_index(path: Path, query: QuerySpec) -> None:
        raise IndexNotDefined(
            f'Index not defined, add ".indexOn": "{child_spec(order_child(query) or ())}", '
            f'for path "{paths.to_str(path)}", to the rules'
        )


LARGE_VALUE_NODES = 10_000
"""Written values with more nodes are validated in a thread, not on the event loop: 300,000
children take a third of a second, which every other client would wait out (:meth:`Engine._validate`)."""


def _is_large(value: Any) -> bool:
    """Whether a decoded JSON value has more than :data:`LARGE_VALUE_NODES` nodes (counting
    stops there, so a small value costs a short walk and a large one almost none)."""
    if not isinstance(value, (dict, list)):
        return False
    count = 0
    stack = [value]
    while stack:
        container = stack.pop()
        count += len(container)
        if count > LARGE_VALUE_NODES:
            return True
        for child in container.values() if isinstance(container, dict) else container:
            if isinstance(child, (dict, list)):
                stack.append(child)
    return False
