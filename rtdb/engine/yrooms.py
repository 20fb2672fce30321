"""Yjs documents on the event loop: one :class:`Room` per open document (issue 16).

A room holds the server's copy of the document (a pycrdt ``Doc`` for answering sync step 1),
its peers and their awareness states. A peer's update goes to the writer as a ``ydoc``
command (:mod:`rtdb.engine.ydoc`); updates that arrive while one batch is being committed
form the next batch, so a busy document commits many updates per group transaction. Only
once a batch has committed (and its mirror's ChangeSet reached local listeners) are its
accepted updates applied here and sent to the other peers; the sender of a refused update is
closed with :data:`CLOSE_DENIED` and its update reaches nobody.

With other processes writing the same namespace (``--workers``, cluster nodes), a room listens
to the namespace's ChangeSets: a change of its document's mirror that it did not make makes it
read the rows stored after the last one it has, and pass them on to its peers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from pycrdt import Doc, merge_updates

from rtdb.core.auth import Caller
from rtdb.core.changes import ChangeSet
from rtdb.core.path import Path
from rtdb.engine.ydoc import ydoc_key
from rtdb.protocol.yjs import (
    EMPTY_UPDATE,
    Awareness,
    AwarenessEntry,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    YMessage,
    encode_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)

log = logging.getLogger("rtdb.yjs")

CLOSE_DENIED = 4403
"""Close code for a peer that may not read the document (any more) or sent an update it may not write."""
CLOSE_INVALID = 4400
"""Close code for a peer whose update is not valid (not a Yjs update, or a document the JSON tree cannot mirror)."""
CLOSE_UNAVAILABLE = 1013
"""Close code when storage failed: the peer reconnects and resyncs."""


class Peer(Protocol):
    caller: Caller

    def send(self, data: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


class Room:
    def __init__(self, rooms: Rooms, ns: str, path: Path) -> None:
        self.rooms = rooms
        self.ns = ns
        self.path = path
        self.doc: Doc[Any] = Doc()
        self.last = 0  # the last stored row applied to ``doc``
        self.peers: dict[Peer, set[int]] = {}  # each peer and the awareness client ids it speaks for
        self.awareness: dict[int, tuple[int, str]] = {}  # client id -> (clock, JSON state)
        self.loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue: list[tuple[bytes, Peer]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._catching_up: asyncio.Task[None] | None = None

    # -- joining and leaving -------------------------------------------------------
    async def join(self, peer: Peer) -> None:
        """Add ``peer`` (its read access already checked) and greet it: the server's sync step 1,
        and the awareness states known."""
        await asyncio.shield(self.loaded)
        self.peers[peer] = set()
        peer.send(encode_sync_step1(self.doc.get_state()))
        if self.awareness:
            peer.send(self._awareness_message(list(self.awareness)))

    def leave(self, peer: Peer) -> None:
        clients = self.peers.pop(peer, set())
        gone = [client for client in clients if client in self.awareness]
        if gone:  # tell the others this peer's cursors are gone
            for client in gone:
                clock, _ = self.awareness[client]
                self.awareness[client] = (clock + 1, "null")
            self._broadcast(self._awareness_message(gone), None)
            for client in gone:
                del self.awareness[client]
        if not self.peers and not self._queue and self._flushing is None:
            self.rooms.close(self)

    # -- messages from a peer -------------------------------------------------------
    def receive(self, peer: Peer, message: YMessage) -> None:
        if isinstance(message, SyncStep1):
            peer.send(encode_sync_step2(self.doc.get_update(message.state)))
        elif isinstance(message, (SyncStep2, SyncUpdate)):
            if message.update != EMPTY_UPDATE:
                self._queue.append((message.update, peer))
                if self._flushing is None:
                    self._flushing = asyncio.get_running_loop().create_task(self._flush())
        elif isinstance(message, Awareness):
            self._awareness(peer, message)
        elif isinstance(message, QueryAwareness):
            if self.awareness:
                peer.send(self._awareness_message(list(self.awareness)))

    def _awareness(self, peer: Peer, message: Awareness) -> None:
        clients = self.peers.get(peer)
        if clients is None:
            return
        for entry in message.entries:
            known = self.awareness.get(entry.client)
            if known is not None and known[0] > entry.clock:
                continue  # older than what we have
            if entry.state == "null":
                self.awareness.pop(entry.client, None)
                clients.discard(entry.client)
            else:
                self.awareness[entry.client] = (entry.clock, entry.state)
                clients.add(entry.client)
        self._broadcast(encode_awareness(message.entries), peer)

    def _awareness_message(self, clients: list[int]) -> bytes:
        return encode_awareness([AwarenessEntry(c, *self.awareness[c]) for c in clients])

    # -- committing updates ---------------------------------------------------------
    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._commit(batch)
        finally:
            self._flushing = None
            if not self.peers:
                self.rooms.close(self)

    async def _commit(self, batch: list[tuple[bytes, Peer]]) -> None:
        try:
            result = await self.rooms.engine.ydoc_write(
                self.ns, self.path, [(update, peer.caller) for update, peer in batch]
            )
        except Exception as exc:
            log.warning("Yjs document /%s of %s: storing %d updates failed: %s", ydoc_key(self.path), self.ns,
                        len(batch), exc)
            for peer in {peer for _, peer in batch}:
                peer.close(CLOSE_UNAVAILABLE, "unavailable: the update was not stored")
            return
        first = result.last - sum(1 for refusal in result.refused if refusal is None)
        if first > self.last:  # stored by another process meanwhile: take those rows first
            await self._catch_up()
        accepted: list[bytes] = []
        senders: set[Peer] = set()
        for (update, peer), refusal in zip(batch, result.refused):
            if refusal is not None:
                code = CLOSE_DENIED if refusal.startswith("permission_denied") else CLOSE_INVALID
                peer.close(code, refusal[:120])
                self.peers.pop(peer, None)
                continue
            accepted.append(update)
            senders.add(peer)
        if accepted:
            # one message for the whole batch (Yrs merges the updates): a sender that gets its own
            # update back applies nothing, so only a batch from a single sender skips it
            merged = accepted[0] if len(accepted) == 1 else merge_updates(*accepted)
            self._apply(merged, next(iter(senders)) if len(senders) == 1 else None)
        self.last = max(self.last, result.last)

    def _apply(self, update: bytes, sender: Peer | None) -> None:
        self.doc.apply_update(update)
        self._broadcast(encode_update(update), sender)

    def _broadcast(self, message: bytes, sender: Peer | None) -> None:
        for peer in list(self.peers):
            if peer is not sender:
                peer.send(message)

    # -- other processes --------------------------------------------------------------
    def _changed(self, changeset: ChangeSet) -> None:
        if any(change.path == self.path for change in changeset.changes) and self._catching_up is None:
            self._catching_up = asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            rows = await self.rooms.engine.ydoc_rows(self.ns, self.path, caller=_ADMIN, after=self.last)
            for n, data in rows:
                if n > self.last:
                    self._apply(data, None)
                    self.last = n
        except Exception:
            log.exception("Yjs document /%s of %s: reading newer rows failed", ydoc_key(self.path), self.ns)
        finally:
            self._catching_up = None


_ADMIN = Caller(admin=True)


class Rooms:
    """The open Yjs documents of one server process."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.rooms: dict[tuple[str, Path], Room] = {}

    async def join(self, ns: str, path: Path, peer: Peer) -> Room:
        """The room of the document at ``path`` with ``peer`` in it; raises
        :class:`rtdb.core.errors.PermissionDenied` if the peer may not read ``path``."""
        room = self.rooms.get((ns, path))
        if room is None:
            room = self.rooms[(ns, path)] = Room(self, ns, path)
            try:
                if self.engine.shared:
                    room._unsubscribe = self.engine.feed.subscribe(ns, room._changed)
                rows = await self.engine.ydoc_rows(ns, path, caller=peer.caller)
                for n, data in rows:
                    room.doc.apply_update(data)
                    room.last = n
                room.loaded.set_result(None)
            except BaseException as exc:
                self.close(room)
                room.loaded.set_exception(exc)
                room.loaded.exception()  # retrieved: joiners waiting on it re-raise it
                raise
        elif not await self.engine.check_read(ns, path, caller=peer.caller):
            from rtdb.core.errors import PermissionDenied

            raise PermissionDenied("Permission denied")
        await room.join(peer)
        return room

    def close(self, room: Room) -> None:
        if self.rooms.get((room.ns, room.path)) is room:
            del self.rooms[(room.ns, room.path)]
        if room._unsubscribe is not None:
            room._unsubscribe()
            room._unsubscribe = None

    async def recheck(self, ns: str | None) -> None:
        """Rules changed: close peers that lost read access."""
        for room in list(self.rooms.values()):
            if ns is not None and room.ns != ns:
                continue
            for peer in list(room.peers):
                try:
                    allowed = await self.engine.check_read(room.ns, room.path, caller=peer.caller)
                except Exception:
                    allowed = False
                if not allowed:
                    peer.close(CLOSE_DENIED, "permission_denied: read access revoked")
                    room.leave(peer)

    def drop(self, ns: str) -> None:
        """``ns`` was dropped or lost: its peers reconnect and resync."""
        for room in list(self.rooms.values()):
            if room.ns == ns:
                for peer in list(room.peers):
                    peer.close(1012, "service restart")
                    room.leave(peer)
                self.close(room)


__all__ = ["CLOSE_DENIED", "CLOSE_INVALID", "Peer", "Room", "Rooms"]
