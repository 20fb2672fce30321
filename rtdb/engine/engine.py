"""The engine: the only place where storage, rules and the change feed meet.

Every transport calls these coroutines with the caller's identity. Writes run
as functions in the store's writer thread (validation of state, server values,
rules and the write itself happen in one savepoint); the ChangeSet of each
committed write is published to the feed before the write is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.changes import Change, ChangeSet, decode_changeset, encode_changeset
from rtdb.core.errors import (
    IndexNotDefined,
    InvalidData,
    InvalidPath,
    NoNamespace,
    PermissionDenied,
    PreconditionFailed,
)
from rtdb.core.hash import etag, node_hash
from rtdb.core.path import PRIORITY_KEY, Path
from rtdb.core.pushid import PushIdGenerator
from rtdb.core.query import QuerySpec
from rtdb.core.servervalue import resolve
from rtdb.core.value import Node, normalize, same, to_plain, with_priority
from rtdb.engine.access import RulesAccess
from rtdb.realtime.broker import Broker, InProcessBroker
from rtdb.rules import Decision, Ruleset
from rtdb.storage.sqlite import SqliteStore
from rtdb.storage.txn import Txn

log = logging.getLogger("rtdb.engine")

_NAMESPACE_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ReadResult:
    node: Node
    seq: int


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The value now stored at the written path and what the write changed
    (``changeset`` is ``None`` when the write changed nothing)."""

    node: Node
    changeset: ChangeSet | None
    encoded: bytes | None = None  # the changeset as brokers carry it, when already encoded

    @property
    def etag(self) -> str:
        return etag(self.node)


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
        shared: bool = False,
    ) -> None:
        """``shared``: other processes write the same files (`rtdb serve --workers`); every
        commit is then also kept in the namespace's change log for them."""
        self.data_dir = data_dir
        self.access = access
        self.clock = clock
        self.feed: Broker = feed if feed is not None else InProcessBroker()
        self.synchronous = synchronous
        self.indexes = dict(indexes or {})
        self.require_indexes = require_indexes
        self.shared = shared
        self.push_ids = PushIdGenerator()
        self._stores: dict[str, SqliteStore] = {}
        self._opening: dict[str, asyncio.Future[SqliteStore]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.feed.on_announce(self._announced)

    # -- namespaces -----------------------------------------------------------
    async def store(self, ns: str) -> SqliteStore:
        store = self._stores.get(ns)
        if store is not None:
            return store
        if not _NAMESPACE_OK.match(ns):
            raise NoNamespace(f"Invalid namespace {ns!r}")
        pending = self._opening.get(ns)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SqliteStore] = asyncio.get_running_loop().create_future()
        self._opening[ns] = future
        try:
            store = SqliteStore(self.data_dir / f"{ns}.sqlite", synchronous=self.synchronous)
            self.feed.open_namespace(ns)
            await store.open()
            store.on_commit = self._publish
            seq = await store.read(lambda txn: txn.committed_seq())
            self.feed.start_namespace(ns, seq, self._log_reader(store))
            source = await store.read(lambda txn: txn.meta("rules"))
            if source is not None:
                self.access.set_namespace(ns, Ruleset.compile(source))
            await self._declare_indexes(ns, store)
            self._stores[ns] = store
            future.set_result(store)
            return store
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._opening[ns]

    async def _declare_indexes(self, ns: str, store: SqliteStore) -> None:
        wanted = [(pattern, child) for pattern, children in self.indexes.items() for child in children]
        wanted += self.access.declared_indexes(ns)
        if wanted:
            await store.write(lambda txn: [txn.declare_index(p, c) for p, c in wanted])

    # -- rules ----------------------------------------------------------------
    def rules_source(self, ns: str) -> str:
        return self.access.ruleset(ns).source

    async def deploy_rules(self, ns: str, source: str, *, caller: Caller) -> None:
        """Compile and install rules for one namespace (persisted in its file); admins only.
        A source that does not compile raises :class:`RulesError` and changes nothing."""
        if not caller.admin:
            raise PermissionDenied("Permission denied")
        ruleset = Ruleset.compile(source)
        store = self._stores.get(ns) or await self.store(ns)
        await store.write(lambda txn: txn.set_meta("rules", source))
        self.access.set_namespace(ns, ruleset)
        await self._declare_indexes(ns, store)
        self.feed.announce("rules", ns)

    def _announced(self, kind: str, ns: str) -> None:
        """Another process deployed rules for ``ns``: load them from the file."""
        if kind != "rules" or ns not in self._stores:
            return
        task = asyncio.get_running_loop().create_task(self._reload_rules(ns))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_rules(self, ns: str) -> None:
        store = self._stores[ns]
        try:
            source = await store.read(lambda txn: txn.meta("rules"))
            if source is not None:
                self.access.set_namespace(ns, Ruleset.compile(source))
        except Exception:
            log.exception("reloading the rules of %s failed", ns)

    @staticmethod
    def _log_reader(store: SqliteStore) -> Callable[[int], Awaitable[list[ChangeSet]]]:
        async def read(after: int) -> list[ChangeSet]:
            return [decode_changeset(b) for b in await store.read(lambda txn: txn.changes_after(after))]

        return read

    async def reload_default_rules(self, ruleset: Ruleset) -> None:
        """Swap the server-wide rules (already compiled) and build the indexes they declare."""
        self.access.set_default(ruleset)
        for ns, store in list(self._stores.items()):
            await self._declare_indexes(ns, store)

    def is_indexed(self, ns: str, path: Path, query: QuerySpec | None) -> bool:
        """Whether a query's order has a declared index (``.indexOn`` or ``--index``);
        key and priority orders need none. Unindexed queries still run (with a warning)."""
        if query is None or query.order_by not in ("child", "value"):
            return True
        child = ".value" if query.order_by == "value" else "/".join(query.child)
        if child in self.access.ruleset(ns).index_on(path):
            return True
        want = (".value",) if query.order_by == "value" else query.child
        return any(
            len(pattern) == len(path) and all(p.startswith("$") or p == k for p, k in zip(pattern, path))
            and want in children
            for pattern, children in self.indexes.items()
        )

    async def check_read(self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None) -> bool:
        """Whether ``caller`` may (still) read ``path``: for revoking listens after rules change."""
        store = self._stores.get(ns) or await self.store(ns)
        now = self.clock()
        return await store.read(lambda txn: self.access.can_read(ns, caller, path, txn, now, query).allowed)

    async def explain(self, ns: str, op: str, path: Path, value: Any = None, *, caller: Caller) -> Decision:
        """The decision and trace the rules give for a read, set or update, without doing it."""
        return await self._decide(ns, op, path, value, caller, explain=True)

    async def check_write(self, ns: str, op: str, path: Path, value: Any, *, caller: Caller) -> None:
        """Raise :class:`PermissionDenied` unless the rules would allow this set or update now
        (onDisconnect ops are checked when registered, as Firebase does, and again when run)."""
        self._check(await self._decide(ns, op, path, value, caller, explain=False))

    async def _decide(self, ns: str, op: str, path: Path, value: Any, caller: Caller, *, explain: bool) -> Decision:
        store = self._stores.get(ns) or await self.store(ns)
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

        return await store.read(run)

    async def close(self) -> None:
        for store in list(self._stores.values()):
            await store.close()
        self._stores.clear()

    def _publish(self, results: list[Any]) -> None:
        for result in results:
            if isinstance(result, WriteResult) and result.changeset is not None:
                self.feed.publish(result.changeset, result.encoded)

    # -- reads ----------------------------------------------------------------
    async def read(
        self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None, plain: bool = False
    ) -> ReadResult:
        """The node at ``path`` (or the children a query selects) and the commit sequence
        number it reflects. With ``plain`` a plain read comes as a REST GET shows it
        (:func:`rtdb.core.value.to_plain`), built in the same pass."""
        store = self._stores.get(ns) or await self.store(ns)
        now = self.clock()

        def op(txn: Txn) -> ReadResult:
            self._check(self.access.can_read(ns, caller, path, txn, now, query))
            if query is None or query.is_default and query.order_by == "priority":
                return ReadResult(txn.node(path, plain=plain), txn.committed_seq())
            index = txn.find_index(path, query)
            if self.require_indexes and not self.is_indexed(ns, path, query):
                self._missing_index(path, query)
            selected = txn.query(path, query, index)
            node = {k: v for k, v in selected} or None
            return ReadResult(to_plain(node) if plain else node, txn.committed_seq())

        return await store.read(op)

    async def get(self, ns: str, path: Path, *, caller: Caller, query: QuerySpec | None = None) -> Node:
        return (await self.read(ns, path, caller=caller, query=query)).node

    async def shallow(self, ns: str, path: Path, *, caller: Caller) -> tuple[Node, list[str]]:
        """A leaf's value, or the keys of an object's children (grandchildren unread)."""
        store = self._stores.get(ns) or await self.store(ns)
        now = self.clock()

        def op(txn: Txn) -> tuple[Node, list[str]]:
            self._check(self.access.can_read(ns, caller, path, txn, now, None))
            return txn.child_keys(path)

        return await store.read(op)

    async def export(
        self, ns: str, path: Path, write: Callable[[str], None], *, keep_priorities: bool, caller: Caller
    ) -> None:
        """Stream the node at ``path`` as JSON text to ``write`` (called from a reader thread)."""
        store = self._stores.get(ns) or await self.store(ns)
        now = self.clock()

        def op(txn: Txn) -> None:
            self._check(self.access.can_read(ns, caller, path, txn, now, None))
            for chunk in txn.export_chunks(path, keep_priorities=keep_priorities):
                write(chunk)

        await store.read(op)

    @staticmethod
    def _missing_index(path: Path, query: QuerySpec) -> None:
        child = ".value" if query.order_by == "value" else "/".join(query.child)
        raise IndexNotDefined(
            f'Index not defined, add ".indexOn": "{child}", for path "{paths.to_str(path)}", to the rules'
        )

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
            return await self._set_priority(ns, path[:-1], value, caller=caller)
        node = normalize(value, path)
        store = self._stores.get(ns) or await self.store(ns)

        def op(txn: Txn) -> WriteResult:
            now = self.clock()
            old = txn.node(path)
            self._check_precondition(old, if_match, if_hash)
            new = resolve(node, path, now, txn.node)
            self._check(self.access.can_write(ns, caller, path, new, txn, now))
            return self._apply(txn, ns, "set", path, [(path, old, new)])

        return await self._write(store, op)

    async def _set_priority(self, ns: str, path: Path, value: Any, *, caller: Caller) -> WriteResult:
        priority = written_priority(value, path)
        store = self._stores.get(ns) or await self.store(ns)

        def op(txn: Txn) -> WriteResult:
            now = self.clock()
            old = txn.node(path)
            new = prioritized(old, priority, path, now, txn.node)
            self._check(self.access.can_write(ns, caller, path, new, txn, now))
            return self._apply(txn, ns, "set", path, [(path, old, new)])

        return await self._write(store, op)

    async def update(
        self, ns: str, path: Path, updates: Mapping[str, Any], *, caller: Caller, if_hash: str | None = None
    ) -> WriteResult:
        """Apply a multi-path update atomically: each key is a path relative to ``path``."""
        items = parse_updates(path, updates)
        store = self._stores.get(ns) or await self.store(ns)

        def op(txn: Txn) -> WriteResult:
            now = self.clock()
            if if_hash is not None:
                self._check_precondition(txn.node(path), None, if_hash)
            writes: list[tuple[Path, Node, Node]] = []
            for target, node in items:
                if target and target[-1] == PRIORITY_KEY:
                    target = target[:-1]
                    old = txn.node(target)
                    new = prioritized(old, node, target, now, txn.node)
                else:
                    old = txn.node(target)
                    new = resolve(node, target, now, txn.node)
                writes.append((target, old, new))
            relative = {paths.relative(path, t): new for t, _, new in writes}
            self._check(self.access.can_update(ns, caller, path, relative, txn, now))
            result = self._apply(txn, ns, "update", path, writes)
            echo = {"/".join(rel): new for rel, new in relative.items()}
            return WriteResult(echo or None, result.changeset, result.encoded)

        return await self._write(store, op)

    async def push(self, ns: str, path: Path, value: Any, *, caller: Caller) -> tuple[str, WriteResult]:
        key = self.push_ids.next(self.clock())
        return key, await self.set(ns, path + (key,), value, caller=caller)

    def _apply(self, txn: Txn, ns: str, kind: Any, base: Path, writes: list[tuple[Path, Node, Node]]) -> WriteResult:
        changes = []
        for target, old, new in writes:
            if same(old, new):
                continue
            txn.set(target, new, old=old)
            changes.append(Change(target, old, new))
        last = writes[-1][2] if writes else None
        if not changes:
            return WriteResult(last, None)
        changeset = ChangeSet(ns, txn.next_seq(), kind, base, tuple(changes))
        if not self.shared:
            return WriteResult(last, changeset)
        encoded = encode_changeset(changeset)  # for the change log and the relay alike
        txn.log_change(changeset.seq, encoded)
        return WriteResult(last, changeset, encoded)

    async def _write(self, store: SqliteStore, op: Callable[[Txn], WriteResult]) -> WriteResult:
        """Commit ``op``; return once the local listeners have its ChangeSet (before the ack)."""
        result = await store.write(op)
        if result.changeset is not None:
            pending = self.feed.delivered(result.changeset)
            if pending is not None:
                await pending
        return result

    @staticmethod
    def _check_precondition(old: Node, if_match: str | None, if_hash: str | None) -> None:
        if if_match is not None and etag(old) != if_match:
            raise PreconditionFailed("ETag mismatch", old, etag(old))
        if if_hash is not None and node_hash(old) != if_hash:
            raise PreconditionFailed("datastale", old, etag(old))

    @staticmethod
    def _check(decision: Decision) -> None:
        if not decision.allowed:
            raise PermissionDenied("Permission denied")


def written_priority(value: Any, at: Path) -> Node:
    """A value written to ``<at>/.priority``, validated and normalized (``None`` removes it)."""
    wrapped = normalize({".value": 0, ".priority": value}, at)
    return wrapped.get(".priority") if isinstance(wrapped, dict) else None


def prioritized(old: Node, priority: Node, at: Path, now: int, current: Callable[[Path], Node]) -> Node:
    """``old`` with ``priority`` (from :func:`written_priority`; server values resolved now)."""
    if priority is None:
        return with_priority(old, None)
    resolved = resolve({".value": 0, ".priority": priority}, at, now, current)
    return with_priority(old, resolved.get(".priority") if isinstance(resolved, dict) else None)


def parse_updates(base: Path, updates: Mapping[str, Any]) -> list[tuple[Path, Node]]:
    """Validate a multi-path update: paths parse, none is an ancestor of another, values normalize."""
    if not isinstance(updates, Mapping):
        raise InvalidData(
            "Invalid data; couldn't parse JSON object. Are you sending a JSON object with valid key names?"
        )
    items: list[tuple[Path, Node]] = []
    for raw, value in updates.items():
        try:
            rel = paths.parse(raw, allow_priority=True)
        except InvalidPath:
            raise InvalidData(
                f"Invalid data; couldn't parse key {raw!r}. Key value can't be empty or contain $ # [ ] / or ."
            ) from None
        target = base + rel
        paths.check_limits(target)
        if target and target[-1] == PRIORITY_KEY:
            node = written_priority(value, target[:-1])
        else:
            node = normalize(value, target)
        items.append((target, node))
    ordered = sorted(p for p, _ in items)
    for a, b in zip(ordered, ordered[1:]):
        if b[: len(a)] == a:
            raise InvalidData(
                f"Invalid data; path {paths.to_str(a)} is an ancestor of {paths.to_str(b)} in the same update"
            )
    return items
