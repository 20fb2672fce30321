"""The broker between the worker processes of one `rtdb serve --workers N`.

Every worker opens the same SQLite files and commits its own writes; SQLite's
write lock gives all commits of a namespace one order, and the commit ``seq``
stored with them names it. The supervisor process relays frames: what one
worker sends reaches every other worker. :class:`RelayBroker` is the worker's
end: it sends its own ChangeSets, takes the others', and releases both to its
local subscribers in ``seq`` order. A ChangeSet that never arrives (its worker
died between commit and send) is read back from the namespace's change log
after ``gap_wait_s``, so no listener misses a commit and none waits for ever
(the ordering is :class:`~rtdb.realtime.ordered.OrderedFeed`'s; this module is
the transport).

Frames are a 4-byte big-endian length and a payload, one msgpack-encoded
:data:`rtdb.core.ipc.BrokerMessage` (the messages of every broker): ``["C", "", "",
ChangeSet]`` or ``["A", "", kind, namespace]`` (workers need no node name or epoch).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgspec

from rtdb.core import ipc
from rtdb.core.changes import ChangeSet, encode_changeset
from rtdb.core.ipc import BrokerAnnounce, BrokerChange, BrokerPointer
from rtdb.realtime.ordered import FeedStats, OrderedFeed

log = logging.getLogger("rtdb.realtime")

_LENGTH = struct.Struct(">I")
MAX_FRAME = 512 * 1024 * 1024


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
class RelayStats(FeedStats):
    sent: int = 0
    received: int = 0


class RelayBroker(OrderedFeed[RelayStats]):
    """The worker's end of the relay: frames to and from the supervisor; the order is
    :class:`~rtdb.realtime.ordered.OrderedFeed`'s."""

    def __init__(self, *, gap_wait_s: float = 0.2) -> None:
        super().__init__(RelayStats(), gap_wait_s=gap_wait_s)
        self._send: Callable[[bytes], None] | None = None
        self._outgoing: list[bytes] = []

    # -- the link to the supervisor ---------------------------------------------------
    def attach(self, send: Callable[[bytes], None] | None) -> None:
        """``send(frame)`` writes to the supervisor (``None``: the link is gone)."""
        self._send = send

    def received(self, payload: bytes) -> None:
        """One frame's payload from another worker."""
        self.stats.received += 1
        try:
            message = ipc.decode_broker(payload)
        except msgspec.DecodeError as exc:
            log.warning("unknown relay frame: %s", exc)
            return
        if type(message) is BrokerChange:
            self._arrived(message.changeset)
        elif type(message) is BrokerPointer:
            self._want(message.ns, message.seq, now=True)
        elif type(message) is BrokerAnnounce:
            self._heard(message.kind, message.ns)

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

    # -- Broker (the rest is OrderedFeed's) ----------------------------------------------
    def publish(self, changeset: ChangeSet, encoded: bytes | None = None) -> None:
        self._write(ipc.broker_change("", "", encoded if encoded is not None else encode_changeset(changeset)))
        self._arrived(changeset)

    def announce(self, kind: str, ns: str) -> None:
        self._write(ipc.encode(BrokerAnnounce("", kind, ns)))
