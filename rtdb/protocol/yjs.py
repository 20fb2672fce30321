"""The y-protocols wire format spoken at ``/.yjs/<path>`` (y-websocket), sans I/O.

A WebSocket binary message is one y-protocols message: a varuint message type, then

* ``0`` sync: a varuint sync type (``0`` step 1 carrying a state vector, ``1`` step 2 and
  ``2`` update, each carrying a Yjs update), then that payload as a varUint8Array;
* ``1`` awareness: a varUint8Array holding ``count`` entries of (client id, clock, JSON
  state as a varString; ``"null"`` when the client left);
* ``3`` query awareness: nothing more (the peer asks for every known state).

Numbers are lib0's varuint: 7 bits per byte, low bits first, the high bit set on every
byte but the last. Decoding is strict: a truncated number or payload, trailing bytes or an
unknown type raises :class:`YProtocolError` and the transport closes the socket. The Yjs
update itself is opaque here; pycrdt (Yrs) decodes it in the engine.
"""

from __future__ import annotations

import msgspec

from rtdb.protocol.errors import MessageTooBig, ProtocolError

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

MAX_VARUINT_BYTES = 8  # 56 bits: lib0 writes JavaScript's safe integers (53 bits) in at most 8 bytes
EMPTY_UPDATE = b"\x00\x00"  # a Yjs update with no structs and no deletions


class YProtocolError(ProtocolError):
    """A y-protocols message that cannot be decoded."""


class SyncStep1(msgspec.Struct, frozen=True, tag=True):
    state: bytes  # the sender's encoded state vector


class SyncStep2(msgspec.Struct, frozen=True, tag=True):
    update: bytes  # what the receiver of step 1 lacked


class SyncUpdate(msgspec.Struct, frozen=True, tag=True):
    update: bytes


class AwarenessEntry(msgspec.Struct, frozen=True):
    client: int
    clock: int
    state: str  # JSON text; "null" removes the client


class Awareness(msgspec.Struct, frozen=True, tag=True):
    entries: tuple[AwarenessEntry, ...]


class QueryAwareness(msgspec.Struct, frozen=True, tag=True):
    pass


YMessage = SyncStep1 | SyncStep2 | SyncUpdate | Awareness | QueryAwareness


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varuint(self) -> int:
        value = 0
        shift = 0
        for _ in range(MAX_VARUINT_BYTES):
            if self.pos >= len(self.data):
                raise YProtocolError("truncated number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise YProtocolError("number too long")

    def bytes(self) -> bytes:
        n = self.varuint()
        end = self.pos + n
        if end > len(self.data):
            raise YProtocolError("truncated payload")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def string(self) -> str:
        try:
            return self.bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise YProtocolError("string is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise YProtocolError("trailing bytes after the message")


def decode_message(data: bytes, *, max_bytes: int) -> YMessage:
    """One y-protocols message as sent by a client. ``max_bytes`` bounds the whole message."""
    if len(data) > max_bytes:
        raise MessageTooBig(f"message of {len(data)} bytes exceeds {max_bytes}")
    reader = _Reader(data)
    kind = reader.varuint()
    message: YMessage
    if kind == MESSAGE_SYNC:
        sync = reader.varuint()
        payload = reader.bytes()
        if sync == SYNC_STEP1:
            message = SyncStep1(payload)
        elif sync == SYNC_STEP2:
            message = SyncStep2(payload)
        elif sync == SYNC_UPDATE:
            message = SyncUpdate(payload)
        else:
            raise YProtocolError(f"unknown sync message type {sync}")
    elif kind == MESSAGE_AWARENESS:
        message = Awareness(decode_awareness(reader.bytes()))
    elif kind == MESSAGE_QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        raise YProtocolError(f"unknown message type {kind}")
    reader.end()
    return message


def decode_awareness(payload: bytes) -> tuple[AwarenessEntry, ...]:
    reader = _Reader(payload)
    count = reader.varuint()
    if count > len(payload):  # every entry takes at least three bytes: a forged count cannot allocate
        raise YProtocolError("awareness entry count exceeds the payload")
    entries = tuple(AwarenessEntry(reader.varuint(), reader.varuint(), reader.string()) for _ in range(count))
    reader.end()
    return entries


def write_varuint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varuint must not be negative")
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def _sync(sync: int, payload: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, sync)) + write_varuint(len(payload)) + payload


def encode_sync_step1(state: bytes) -> bytes:
    return _sync(SYNC_STEP1, state)


def encode_sync_step2(update: bytes) -> bytes:
    return _sync(SYNC_STEP2, update)


def encode_update(update: bytes) -> bytes:
    return _sync(SYNC_UPDATE, update)


def encode_awareness(entries: tuple[AwarenessEntry, ...] | list[AwarenessEntry]) -> bytes:
    body = bytearray(write_varuint(len(entries)))
    for entry in entries:
        state = entry.state.encode("utf-8")
        body += write_varuint(entry.client) + write_varuint(entry.clock) + write_varuint(len(state)) + state
    return bytes((MESSAGE_AWARENESS,)) + write_varuint(len(body)) + bytes(body)


def encode_query_awareness() -> bytes:
    return bytes((MESSAGE_QUERY_AWARENESS,))


__all__ = [
    "EMPTY_UPDATE",
    "Awareness",
    "AwarenessEntry",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "YMessage",
    "YProtocolError",
    "decode_awareness",
    "decode_message",
    "encode_awareness",
    "encode_query_awareness",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_update",
    "write_varuint",
]
