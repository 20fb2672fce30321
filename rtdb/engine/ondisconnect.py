"""onDisconnect operations: where a session's queue lives and who runs it.

A :class:`DisconnectRegistry` keeps each session's operations in registration order. The
transport registers and cancels them; when the session ends it *takes* them (a normal
close), or a new session of the same client *takes them over* (``ls=``) before its own
requests are served, so a late "offline" never lands after a new "online"; a node's sweeper
takes those of nodes that died. Taking removes: whoever took an operation runs it, through
the normal write path, as the caller who registered it (the rules are checked again then).

* :class:`MemoryRegistry`: in this process's memory (one node, SQLite): the queue dies
  with the process, as it always did. The caller runs what it took (:func:`run_ops`).
* :class:`PostgresRegistry`: in PostgreSQL (:mod:`rtdb.storage.pg_cluster`), registered
  under this node's lease (:mod:`rtdb.engine.cluster`); a registration is acknowledged after
  its ``INSERT`` committed. Taking deletes the rows and runs them in one transaction of the
  namespace's write group (the ``disconnect`` write command): each operation runs exactly
  once, by one taker, even if a node dies or PostgreSQL goes away between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.errors import RtdbError, Unavailable
from rtdb.core.path import Path
from rtdb.storage.store import DisconnectRow

if TYPE_CHECKING:
    from rtdb.engine.engine import Engine
    from rtdb.storage.pg_cluster import ClusterDb

log = logging.getLogger("rtdb.ondisconnect")

_encode = msgspec.json.Encoder().encode
_decode_caller = msgspec.json.Decoder(Caller).decode
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class DisconnectOp:
    """A queued onDisconnect write in namespace ``ns``: ``set`` (data = value) or ``update``
    (data = {relpath: value}), run as ``caller`` (who registered it)."""

    ns: str
    kind: Literal["set", "update"]
    path: Path
    data: Any
    caller: Caller


Accept = Callable[[Caller], bool]
"""Whether a new session may take over an old one whose operations were registered by this caller."""


class DisconnectRegistry(Protocol):
    durable: bool
    """Whether the operations outlive this process (another node runs them if it dies)."""

    async def register(self, session_id: str, op: DisconnectOp) -> None:
        """Queue ``op`` after the session's others (raises :class:`Unavailable` if it could not be kept)."""

    async def cancel(self, session_id: str, path: Path) -> int:
        """Drop the session's operations at or below ``path``; how many."""

    async def take(self, session_id: str) -> list[DisconnectOp]:
        """The session ended normally: its operations, in order, removed; the caller runs
        those returned (a durable registry runs them itself as it takes them: none)."""

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        """A new session of the same client names ``session_id`` (``ls=``): its operations,
        removed, if ``accept`` takes the caller who registered the latest of them (the caller
        runs those returned, as for :meth:`take`); ``None`` if it does not (nothing removed);
        ``[]`` if it has none (or they ran)."""

    async def discard(self, session_id: str) -> None:
        """Forget the session's operations without running them (its namespace was dropped)."""

    async def sweep(self) -> int:
        """Run the operations of sessions whose node died; how many ran."""


class MemoryRegistry:
    """The queues in this process's memory."""

    durable = False

    def __init__(self) -> None:
        self._ops: dict[str, list[DisconnectOp]] = {}

    async def register(self, session_id: str, op: DisconnectOp) -> None:
        self._ops.setdefault(session_id, []).append(op)

    async def cancel(self, session_id: str, path: Path) -> int:
        ops = self._ops.get(session_id, [])
        kept = [op for op in ops if not paths.is_ancestor_or_self(path, op.path)]
        if kept:
            self._ops[session_id] = kept
        else:
            self._ops.pop(session_id, None)
        return len(ops) - len(kept)

    async def take(self, session_id: str) -> list[DisconnectOp]:
        return self._ops.pop(session_id, [])

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        ops = self._ops.get(session_id)
        if not ops:
            return []
        if not accept(ops[-1].caller):
            return None
        return self._ops.pop(session_id)

    async def discard(self, session_id: str) -> None:
        self._ops.pop(session_id, None)

    async def sweep(self) -> int:
        return 0


class PostgresRegistry:
    """The queues in PostgreSQL, under the lease of the node that ``node()`` names (``None``
    while it holds none: then nothing is registered, taken or swept here).

    This registry runs what it takes itself, through :attr:`engine`: per namespace, one
    ``disconnect`` write command (:mod:`rtdb.engine.writes`) deletes the session's rows and
    runs them in the namespace's write group, so taking and running commit together (each
    operation exactly once: a node that dies, or a group that fails, in between leaves the
    rows to the next taker). :meth:`take` and :meth:`takeover` hand the caller nothing to run."""

    durable = True

    def __init__(self, db: ClusterDb, node: Callable[[], str | None], engine: Engine | None = None) -> None:
        self.db = db
        self.node = node
        self.engine = engine
        """Runs the taken operations (set when the node starts)."""
        self._retry: set[str] = set()  # sessions ended here whose operations could not be run yet

    def _node(self) -> str:
        node = self.node()
        if node is None:
            raise Unavailable("This node has lost its cluster lease; try again")
        return node

    async def register(self, session_id: str, op: DisconnectOp) -> None:
        stored = await self.db.add_op(self._node(), session_id, op.ns, op.kind, "/".join(op.path),
                                      _encode(op.data), _encode(op.caller))
        if not stored:
            raise Unavailable("This node has lost its cluster lease; try again")

    async def cancel(self, session_id: str, path: Path) -> int:
        return await self.db.cancel(session_id, "/".join(path))

    async def take(self, session_id: str) -> list[DisconnectOp]:
        """Run the session's operations now (and return none); if that fails they are tried
        again at each :meth:`sweep` while this node lives (by a sweeper elsewhere once it died)."""
        node = self.node()
        if node is None:  # lost the lease: the sweeper runs them
            return []
        try:
            await self._run(session_id, node)
        except Exception as exc:
            self._retry.add(session_id)
            if isinstance(exc, RtdbError):
                raise
            log.exception("onDisconnect of session %s failed", session_id)
            raise Unavailable("The onDisconnect operations could not run (they will be retried)") from exc
        return []

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        """Run the old session's operations now (and return none) if ``accept`` takes the
        caller who registered its latest one; only those registered up to that one are taken."""
        latest = await self.db.latest(session_id)
        if latest is None:
            return []
        _, caller, upto = latest
        if not accept(_decode_caller(caller)):
            return None
        await self._run(session_id, self._node(), upto=upto)
        return []

    async def discard(self, session_id: str) -> None:
        self._retry.discard(session_id)
        await self.db.discard(session_id)

    async def sweep(self) -> int:
        """Run what sessions ended here could not run before, then the operations of every
        node whose lease ran out, session by session; how many ran. Sweepers of several nodes
        may try the same session: the first to take it runs it, the others find nothing."""
        ran = 0
        for session_id in sorted(self._retry):
            node = self.node()
            if node is None:
                return ran
            try:
                ran += await self._run(session_id, node)
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("onDisconnect of session %s failed again: %s", session_id, exc)
            else:
                self._retry.discard(session_id)
        if self.node() is None:
            return ran
        orphans = await self.db.orphans()
        for dead in dict.fromkeys(row[0] for row in orphans):
            log.info("node %s expired: running the onDisconnect operations of its sessions", dead)
        for dead, session_id, ns in orphans:
            node = self.node()
            if node is None:
                return ran
            try:
                ran += await self._run(session_id, node, owner=dead, namespaces=[ns])
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("onDisconnect of session %s of expired node %s failed: %s", session_id, dead, exc)
        await self.db.remove_expired()
        return ran

    async def _run(self, session_id: str, taker: str, *, owner: str | None = None, upto: int | None = None,
                   namespaces: list[str] | None = None) -> int:
        """Take and run the session's operations, namespace by namespace (in the order of their
        first operation); how many ran."""
        engine = self.engine
        if engine is None:
            raise Unavailable("onDisconnect operations cannot run yet: the node has not started")
        ran = 0
        for ns in namespaces if namespaces is not None else await self.db.namespaces(session_id):
            done = await engine.take_disconnect(ns, session_id, taker=taker, owner=owner, upto=upto)
            ran += len(done.results)
        return ran


def decode_row(row: DisconnectRow) -> DisconnectOp:
    kind: Literal["set", "update"] = "update" if row.kind == "update" else "set"
    path: Path = tuple(row.path.split("/")) if row.path else ()
    return DisconnectOp(row.ns, kind, path, _decode(row.data), _decode_caller(row.caller))


async def run_ops(engine: Engine, ops: list[DisconnectOp]) -> int:
    """Run taken operations in order, each as its registering caller; a failed one (denied by
    the rules now, invalid) is logged and skipped. How many succeeded."""
    done = 0
    for op in ops:
        try:
            if op.kind == "set":
                await engine.set(op.ns, op.path, op.data, caller=op.caller)
            else:
                await engine.update(op.ns, op.path, op.data, caller=op.caller)
            done += 1
        except RtdbError as exc:
            log.info("onDisconnect %s at %s failed: %s", op.kind, paths.to_str(op.path), exc.code)
        except Exception:
            log.exception("onDisconnect %s at %s failed", op.kind, paths.to_str(op.path))
    return done
