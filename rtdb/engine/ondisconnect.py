"""onDisconnect operations: where a session's queue lives and who runs it.

A :class:`DisconnectRegistry` keeps each session's operations in registration order. The
transport registers and cancels them; when the session ends it *takes* them (a normal
close), or a new session of the same client *takes them over* (``ls=``) before its own
requests are served, so a late "offline" never lands after a new "online"; a node's sweeper
takes those of nodes that died. Taking removes: whoever took an operation runs it
(:func:`run_ops`), through the normal write path, as the caller who registered it (the
rules are checked again then).

* :class:`MemoryRegistry`: in this process's memory (one node, SQLite): the queue dies
  with the process, as it always did.
* :class:`PostgresRegistry`: in PostgreSQL (:mod:`rtdb.storage.pg_cluster`), registered
  under this node's lease (:mod:`rtdb.engine.cluster`); a registration is acknowledged after
  its ``INSERT`` committed, and each operation is claimed (deleted) by exactly one taker.
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

if TYPE_CHECKING:
    from rtdb.engine.engine import Engine
    from rtdb.storage.pg_cluster import ClusterDb, OpRow

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
        """The session ended normally: its operations, in order, removed (the caller runs them)."""

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        """A new session of the same client names ``session_id`` (``ls=``): its operations,
        removed, if ``accept`` takes the caller who registered the latest of them; ``None``
        if it does not (nothing removed); ``[]`` if it has none."""

    async def discard(self, session_id: str) -> None:
        """Forget the session's operations without running them (its namespace was dropped)."""

    async def sweep(self) -> list[DisconnectOp]:
        """The operations of sessions whose node died, removed (the caller runs them)."""


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

    async def sweep(self) -> list[DisconnectOp]:
        return []


class PostgresRegistry:
    """The queues in PostgreSQL, under the lease of the node that ``node()`` names (``None``
    while it holds none: then nothing is registered, taken or swept here)."""

    durable = True

    def __init__(self, db: ClusterDb, node: Callable[[], str | None]) -> None:
        self.db = db
        self.node = node

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
        node = self.node()
        if node is None:  # lost the lease: the sweeper runs them
            return []
        return [decode_row(row) for row in await self.db.claim(session_id, node)]

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        latest = await self.db.latest(session_id)
        if latest is None:
            return []
        if not accept(_decode_caller(latest[1])):
            return None
        return [decode_row(row) for row in await self.db.claim(session_id, self._node())]

    async def discard(self, session_id: str) -> None:
        await self.db.discard(session_id)

    async def sweep(self) -> list[DisconnectOp]:
        node = self.node()
        ops: list[DisconnectOp] = []
        while node is not None:
            swept = await self.db.sweep_one(node)
            if swept is None:
                break
            dead, rows = swept
            log.info("node %s expired: running %d onDisconnect operations of its sessions", dead, len(rows))
            ops += [decode_row(row) for row in rows]
            node = self.node()
        return ops


def decode_row(row: OpRow) -> DisconnectOp:
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
