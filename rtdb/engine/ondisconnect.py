"""onDisconnect operations: where a session's queue lives and who runs it.

A :class:`DisconnectRegistry` keeps each session's operations in registration order. The
transport registers and cancels them; when the session ends it *takes* them (a normal
close), or a new session of the same client *takes them over* (``ls=``) before its own
requests are served, so a late "offline" never lands after a new "online"; a node's sweeper
takes those of nodes that died. Taking removes: whoever took an operation runs it, through
the normal write path, as the caller who registered it (the rules are checked again then).

* :class:`MemoryRegistry`: in this process's memory (one node, SQLite): the queue dies
  with the process, as it always did. The caller runs what it took
  (:meth:`rtdb.engine.engine.Engine.run_disconnect`).
* :class:`~rtdb.engine.cluster.PostgresRegistry`: in PostgreSQL (:mod:`rtdb.storage.pg_cluster`),
  registered under this node's lease (:mod:`rtdb.engine.cluster`); a registration is
  acknowledged after its ``INSERT`` committed. Taking deletes the rows and runs them in one transaction of the
  namespace's write group (the ``disconnect`` write command): each operation runs exactly
  once, by one taker, even if a node dies or PostgreSQL goes away between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.path import Path
from rtdb.storage.store import DisconnectRow

encode_json = msgspec.json.Encoder().encode
"""An operation's data or caller as stored (JSON)."""
decode_caller = msgspec.json.Decoder(Caller).decode
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


def decode_row(row: DisconnectRow) -> DisconnectOp:
    kind: Literal["set", "update"] = "update" if row.kind == "update" else "set"
    path: Path = tuple(row.path.split("/")) if row.path else ()
    return DisconnectOp(row.ns, kind, path, _decode(row.data), decode_caller(row.caller))
