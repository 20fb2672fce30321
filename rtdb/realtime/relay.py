"""The broker between the worker processes of one `rtdb serve --workers N`.

Every worker opens the same SQLite files and commits its own writes; SQLite's
write lock gives all commits of a namespace one order, and the commit ``seq``
stored with them names it. The supervisor process relays frames: what one
worker sends reaches every other worker. :class:`RelayBroker` is the worker's
end: it sends its own ChangeSets, takes the others', and releases both to its
local subscribers in ``seq`` order. A ChangeSet that never arrives (its worker
died between commit and send) is read back from the namespace's change log
after ``gap_wait_s``, so no listener misses a commit and none waits for ever.

Frames are a 4-byte big-endian length and a payload: ``C`` + an encoded
ChangeSet, or ``A`` + an encoded ``[kind, namespace]`` announcement.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from rtdb.core.changes import ChangeSet, decode_changeset, encode_changeset
from rtdb.realtime.broker import Fetch, SeqOrderer, Subscriber, Subscribers, call_subscribers

log = logging.getLogger("rtdb.realtime")

_LENGTH = struct.Struct(">I")
MAX_FRAME = 512 * 1024 * 1024
CHANGESET, ANNOUNCE = b"C", b"A"


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class FrameReader:
    """Splits a byte stream into the payloads of length-prefixed frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The payloads of the frames that ``data`` completes."""
        whole = self.complete(data)
        start = 0
        while start < len(whole):
            (size,) = _LENGTH.unpack_from(whole, start)
            yield whole[start + 4 : start + 4 + size]
            start += 4 + size

    def complete(self, data: bytes) -> bytes:
        """The whole frames (still framed) that ``data`` completes: for relaying unread."""
        buffer = self._buffer
        buffer += data
        end = 0
        while len(buffer) - end >= 4:
            (size,) = _LENGTH.unpack_from(buffer, end)
            if size > MAX_FRAME:
                raise ValueError(f"relay frame of {size} bytes")
            if len(buffer) - end - 4 < size:
                break
            end += 4 + size
        out = bytes(buffer[:end])
        del buffer[:end]
        return out


@dataclass
class RelayStats:
    sent: int = 0
    received: int = 0
    read_from_log: int = 0
    skipped: int = 0


@dataclass
class _Namespace:
    orderer: SeqOrderer | None = None  # None while the engine is opening the namespace
    fetch: Fetch | None = None
    early: list[ChangeSet] = field(default_factory=list)
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    gap_timer: asyncio.TimerHandle | None = None
    filling: bool = False


class RelayBroker:
    def __init__(self, *, gap_wait_s: float = 0.2) -> None:
        self.gap_wait_s = gap_wait_s
        self.stats = RelayStats()
        self._subscribers = Subscribers()
        self._namespaces: dict[str, _Namespace] = {}
        self._announced: list[Callable[[str, str], None]] = []
        self.on_lost: Callable[[str], None] | None = None
        """Called with a namespace whose commits were skipped: its listeners must start over."""
        self._send: Callable[[bytes], None] | None = None
        self._outgoing: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the link to the supervisor ---------------------------------------------------
    def attach(self, send: Callable[[bytes], None] | None) -> None:
        """``send(frame)`` writes to the supervisor (``None``: the link is gone)."""
        self._send = send

    def received(self, payload: bytes) -> None:
        """One frame's payload from another worker."""
        self.stats.received += 1
        kind, body = payload[:1], payload[1:]
        if kind == CHANGESET:
            self._accept(decode_changeset(body))
        elif kind == ANNOUNCE:
            what, ns = msgspec.msgpack.decode(body, type=tuple[str, str])
            for callback in list(self._announced):
                try:
                    callback(what, ns)
                except Exception:
                    log.exception("announcement handler failed")
        else:
            log.warning("unknown relay frame %r", kind)

    def _write(self, payload: bytes) -> None:
        """Queue a frame; what one turn of the event loop queues goes out in one write."""
        if self._send is None:
            return
        self.stats.sent += 1
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(frame(payload))

    def _flush(self) -> None:
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._send is not None and data:
            self._send(data)

    # -- Broker ------------------------------------------------------------------------
    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        return self._subscribers.add(ns, callback)

    def publish(self, changeset: ChangeSet, encoded: bytes | None = None) -> None:
        self._write(CHANGESET + (encoded if encoded is not None else encode_changeset(changeset)))
        self._accept(changeset)

    def open_namespace(self, ns: str) -> None:
        self._namespaces.setdefault(ns, _Namespace())

    def start_namespace(self, ns: str, seq: int, fetch: Fetch) -> None:
        state = self._namespaces.setdefault(ns, _Namespace())
        state.fetch = fetch
        if state.orderer is not None:
            return  # reopened (after closing idle files) or watched before it existed: keep its order
        state.orderer = SeqOrderer(seq)
        early, state.early = state.early, []
        for changeset in sorted(early, key=lambda c: c.seq):
            self._accept(changeset)

    def forget_namespace(self, ns: str) -> None:
        """``ns`` was dropped: its order starts again when it is next opened. Commits of the old
        file still on their way are dropped while it is closed (its clients were disconnected)."""
        state = self._namespaces.pop(ns, None)
        if state is None:
            return
        if state.gap_timer is not None:
            state.gap_timer.cancel()
        for _, future in state.waiters:
            if not future.done():
                future.set_result(None)

    def delivered(self, changeset: ChangeSet) -> Awaitable[None] | None:
        state = self._namespaces.get(changeset.namespace)
        if state is None or state.orderer is None or state.orderer.last_seq >= changeset.seq:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append((changeset.seq, future))
        return future

    def announce(self, kind: str, ns: str) -> None:
        self._write(ANNOUNCE + msgspec.msgpack.encode((kind, ns)))

    def on_announce(self, callback: Callable[[str, str], None]) -> None:
        self._announced.append(callback)

    def close(self) -> None:
        for state in self._namespaces.values():
            if state.gap_timer is not None:
                state.gap_timer.cancel()
            for _, future in state.waiters:
                if not future.done():
                    future.set_result(None)
        for task in self._tasks:
            task.cancel()

    # -- ordering ------------------------------------------------------------------------
    def _accept(self, changeset: ChangeSet) -> None:
        state = self._namespaces.get(changeset.namespace)
        if state is None:
            return  # not open in this process: it reads the file when it opens the namespace
        if state.orderer is None:
            state.early.append(changeset)
            return
        self._release(changeset.namespace, state, state.orderer.push(changeset))

    def _release(self, ns: str, state: _Namespace, ready: list[ChangeSet]) -> None:
        assert state.orderer is not None
        subscribers = self._subscribers.of(ns)
        for changeset in ready:
            call_subscribers(subscribers, changeset)
        if ready and state.waiters:
            last = state.orderer.last_seq
            keep = []
            for seq, future in state.waiters:
                if seq <= last:
                    if not future.done():
                        future.set_result(None)
                else:
                    keep.append((seq, future))
            state.waiters = keep
        if state.orderer.holding():
            if state.gap_timer is None and not state.filling:
                state.gap_timer = asyncio.get_running_loop().call_later(self.gap_wait_s, self._gap_expired, ns)
        elif state.gap_timer is not None:
            state.gap_timer.cancel()
            state.gap_timer = None

    def _gap_expired(self, ns: str) -> None:
        state = self._namespaces.get(ns)
        if state is None:
            return  # dropped meanwhile
        state.gap_timer = None
        if state.orderer is None or not state.orderer.holding() or state.filling:
            return
        state.filling = True
        task = asyncio.get_running_loop().create_task(self._fill(ns, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, ns: str, state: _Namespace) -> None:
        """A commit is overdue: read it (and what follows) from the change log."""
        orderer = state.orderer
        assert orderer is not None and state.fetch is not None
        try:
            missing = await state.fetch(orderer.last_seq)
        except Exception:
            log.exception("reading the change log of %s failed", ns)
            missing = []
        state.filling = False
        if self._namespaces.get(ns) is not state:
            return  # the namespace was dropped while its change log was read
        ready: list[ChangeSet] = []
        for changeset in missing:
            if changeset.seq > orderer.last_seq and not orderer.is_held(changeset.seq):
                self.stats.read_from_log += 1
            ready += orderer.push(changeset)
        if orderer.holding() and not ready:
            first = orderer.first_held()
            log.error("%s: commits %d..%d are in no change log; skipping them", ns, orderer.last_seq + 1, first - 1)
            self.stats.skipped += first - 1 - orderer.last_seq
            ready = orderer.skip_to(first - 1)
            if self.on_lost is not None:
                self.on_lost(ns)
        self._release(ns, state, ready)
