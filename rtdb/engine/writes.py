"""What each write does inside the writer, as data in and data out.

A write reaches the writer as a *command*, one of the typed Structs of
:mod:`rtdb.core.ipc` (the same values cross to the writer process, `rtdb serve
--write-process`, as msgpack): :class:`SetCommand` (replace the node at ``path``;
``None`` deletes), :class:`PriorityCommand` (only the node's priority),
:class:`UpdateCommand` (a multi-path update, ``items`` from :func:`parse_updates`),
:class:`MetaCommand` (a row of the file's ``meta`` table: deployed rules),
:class:`IndexesCommand` (declare and build indexes), :class:`DisconnectCommand` (take a
session's onDisconnect operations from PostgreSQL and run them: :meth:`Writes._disconnect`)
and :class:`YdocCommand` (Yjs updates and the document's JSON mirror: :mod:`rtdb.engine.ydoc`).

:meth:`Writes.run` applies one command within the writer's group transaction:
the precondition, server values and the rules are decided against the data as
it is at that moment in commit order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rtdb.core import path as paths
from rtdb.core.changes import Change, ChangeSet, encode_changeset
from rtdb.core.errors import InvalidData, InvalidPath, PermissionDenied, PreconditionFailed, RtdbError, Unavailable
from rtdb.core.hash import etag, node_hash
from rtdb.core.ipc import (
    Command,
    DisconnectCommand,
    IndexesCommand,
    MetaCommand,
    PriorityCommand,
    SetCommand,
    UpdateCommand,
    YdocCommand,
)
from rtdb.core.path import PRIORITY_KEY, Path
from rtdb.core.servervalue import resolve
from rtdb.core.value import Node, normalize, same, with_priority
from rtdb.engine.access import RulesAccess
from rtdb.engine.ondisconnect import DisconnectOp, decode_row
from rtdb.engine.ydoc import DocWriter, check_unmirrored
from rtdb.rules import Decision
from rtdb.storage.store import Txn

log = logging.getLogger("rtdb.ondisconnect")

__all__ = ["Command", "Disconnected", "WriteResult", "Writes"]


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


@dataclass(frozen=True, slots=True)
class Disconnected:
    """What a ``disconnect`` command did: how many operations it took, and the result of each
    that ran, in order (the engine publishes their ChangeSets as if each were a write of its own)."""

    taken: int
    results: tuple[WriteResult, ...]


class Writes:
    """Runs write commands over a writer's :class:`Txn`. ``shared``: other processes read
    the file's change log (`--workers`), so each ChangeSet is also logged, encoded."""

    def __init__(self, access: RulesAccess, *, shared: bool = False, encode: bool = False) -> None:
        self.access = access
        self.shared = shared
        self.encode = encode or shared  # the writer process always sends ChangeSets encoded
        self.ydocs = DocWriter()  # Yjs documents (issue 16)

    def run(self, ns: str, command: Command, txn: Txn) -> Any:
        if isinstance(command, SetCommand):
            c = command
            return self._set(txn, ns, c.path, c.node, c.caller, c.now, c.if_match, c.if_hash)
        if isinstance(command, UpdateCommand):
            return self._update(txn, ns, command.base, command.items, command.caller, command.now, command.if_hash)
        if isinstance(command, PriorityCommand):
            return self._priority(txn, ns, command.path, command.priority, command.caller, command.now)
        if isinstance(command, MetaCommand):
            txn.set_meta(command.name, command.value)
            return None
        if isinstance(command, IndexesCommand):
            for pattern, child in command.indexes:
                txn.declare_index(pattern, child)
            return None
        if isinstance(command, DisconnectCommand):
            return self._disconnect(txn, ns, command.session_id, command.taker, command.owner, command.upto,
                                    command.now)
        if isinstance(command, YdocCommand):
            return self.ydocs.run(self, txn, ns, command.path, command.items, command.now)
        raise ValueError(f"not a write command: {command!r}")

    def _set(self, txn: Txn, ns: str, path: Path, node: Node, caller: Any, now: int,
             if_match: str | None, if_hash: str | None) -> WriteResult:
        old = txn.node(path)
        new = resolve(node, path, now, txn.node)
        check(self.access.can_write(ns, caller, path, new, txn, now))  # rules first: no oracle for the denied
        self._check_precondition(txn, ns, caller, now, path, old, if_match, if_hash)
        check_unmirrored(txn, path, new)  # a Yjs document's mirror is written by its updates only
        return self._apply(txn, ns, "set", path, [(path, old, new)])

    def _priority(self, txn: Txn, ns: str, path: Path, priority: Node, caller: Any, now: int) -> WriteResult:
        old = txn.node(path)
        new = prioritized(old, priority, path, now, txn.node)
        check(self.access.can_write(ns, caller, path, new, txn, now))
        check_unmirrored(txn, path, new)
        return self._apply(txn, ns, "set", path, [(path, old, new)])

    def _update(self, txn: Txn, ns: str, base: Path, items: list[tuple[Path, Node]], caller: Any, now: int,
                if_hash: str | None) -> WriteResult:
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
        relative = {paths.relative(base, t): new for t, _, new in writes}
        check(self.access.can_update(ns, caller, base, relative, txn, now))  # rules first, as for a set
        if if_hash is not None:
            self._check_precondition(txn, ns, caller, now, base, txn.node(base), None, if_hash)
        for target, _, new in writes:
            check_unmirrored(txn, target, new)
        result = self._apply(txn, ns, "update", base, writes)
        echo = {"/".join(rel): new for rel, new in relative.items()}
        return WriteResult(echo or None, result.changeset, result.encoded)

    def _disconnect(self, txn: Txn, ns: str, session_id: str, taker: str, owner: str | None, upto: int | None,
                    now: int) -> Disconnected:
        """Take the session's stored onDisconnect operations of ``ns`` (a ``DELETE`` through this
        transaction: see :meth:`rtdb.storage.txn.Txn.take_disconnect_ops` for the scoping) and run
        them in registration order, each as its registering caller, as :meth:`_set`/:meth:`_update`
        do (rules checked now). Taking and running commit or roll back together: an operation
        runs once, or stays stored for the next taker.

        An operation that is refused or invalid (an :class:`RtdbError`: rules, validation,
        server values) fails before it writes anything: it is logged and skipped, the others
        still run. Any other failure (the database: :class:`Unavailable` or a driver's error,
        the only ones a write to storage raises) fails the whole command, which then leaves no
        trace either: the operations stay stored for a retry."""
        results: list[WriteResult] = []
        rows = txn.take_disconnect_ops(ns, session_id, taker=taker, owner=owner, upto=upto)
        for row in rows:
            op = decode_row(row)
            seq = txn.seq
            try:
                results.append(self._disconnect_op(txn, ns, op, now))
            except Unavailable:
                raise  # the database: not a refusal
            except RtdbError as exc:
                txn.seq = seq
                log.info("onDisconnect %s at %s failed: %s", op.kind, paths.to_str(op.path), exc.code)
        return Disconnected(len(rows), tuple(results))

    def _disconnect_op(self, txn: Txn, ns: str, op: DisconnectOp, now: int) -> WriteResult:
        """One taken operation, validated and written as :meth:`rtdb.engine.engine.Engine.set`
        or ``update`` would (no precondition)."""
        if op.kind == "update":
            return self._update(txn, ns, op.path, parse_updates(op.path, op.data), op.caller, now, None)
        if op.path and op.path[-1] == PRIORITY_KEY:
            at = op.path[:-1]
            return self._priority(txn, ns, at, written_priority(op.data, at), op.caller, now)
        return self._set(txn, ns, op.path, normalize(op.data, op.path), op.caller, now, None, None)

    def _check_precondition(self, txn: Txn, ns: str, caller: Any, now: int, path: Path, old: Node,
                            if_match: str | None, if_hash: str | None) -> None:
        """A failed precondition reports the current value (and its ETag) only to a caller who
        may read it: a writer who may not read learns that it failed, nothing more."""
        try:
            check_precondition(old, if_match, if_hash)
        except PreconditionFailed as exc:
            if self.access.can_read(ns, caller, path, txn, now, None).allowed:
                raise
            raise PreconditionFailed(exc.message, None, None) from None

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
        if not self.encode:
            return WriteResult(last, changeset)
        encoded = encode_changeset(changeset)  # for the change log and the relay alike
        if self.shared:
            txn.log_change(changeset.seq, encoded)
        return WriteResult(last, changeset, encoded)


def check_precondition(old: Node, if_match: str | None, if_hash: str | None) -> None:
    if if_match is not None and etag(old) != if_match:
        raise PreconditionFailed("ETag mismatch", old, etag(old))
    if if_hash is not None and node_hash(old) != if_hash:
        raise PreconditionFailed("datastale", old, etag(old))


def check(decision: Decision) -> None:
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
