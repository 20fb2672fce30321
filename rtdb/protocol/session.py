"""The per-connection protocol state, sans I/O.

A :class:`ServerSession` turns incoming frames into typed requests (answering
pings and malformed requests itself), and keeps what the wire protocol makes a
connection remember: the caller and the listen table keyed by ``(path, query id)``.
The transport moves frames and calls the engine; every decision about the
protocol itself is here. (onDisconnect operations are not the connection's: they
live in a registry of the engine, :mod:`rtdb.engine.ondisconnect`, which may keep
them in PostgreSQL beyond this process.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET, UnsetType

from rtdb.core.auth import ANONYMOUS, Caller
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.protocol.codec import PONG_FRAMES, Frames, decode_client, handshake_frames, response_frames
from rtdb.protocol.errors import BadRequest
from rtdb.protocol.framing import DEFAULT_MAX_MESSAGE_CHARS, FrameAssembler
from rtdb.protocol.messages import ClientControl, ClientData, ClientRequest, Ping, WireQuery

ListenKey = tuple[Path, str]


@dataclass(frozen=True, slots=True)
class Reply:
    """Frames the transport must send right away (pong, answer to a bad request)."""

    frames: Frames


Incoming = ClientRequest | Reply


@dataclass(slots=True)
class ListenEntry:
    """One active listen of this connection. ``handle`` belongs to the transport
    (e.g. the realtime subscription to cancel on unlisten)."""

    path: Path
    query: WireQuery | UnsetType
    query_id: str
    spec: QuerySpec | None
    tag: int | None
    handle: Any = None

    @property
    def key(self) -> ListenKey:
        return (self.path, self.query_id)


@dataclass(slots=True)
class ServerSession:
    session_id: str
    host: str
    namespace: str
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    caller: Caller = ANONYMOUS
    _assembler: FrameAssembler = field(init=False)
    _listens: dict[ListenKey, ListenEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._assembler = FrameAssembler(max_message_chars=self.max_message_chars)

    # -- frames ------------------------------------------------------------------
    def hello(self, now_ms: int) -> Frames:
        """The handshake, the first thing the server sends."""
        return handshake_frames(ts=now_ms, host=self.host, session_id=self.session_id)

    def receive(self, frame: str) -> Incoming | None:
        """Feed one text frame. Returns a request to execute, frames to send at once,
        or ``None`` (keepalive, partial message, ignorable message).

        Raises :class:`~rtdb.protocol.errors.ProtocolError` when the connection
        should be closed.
        """
        text = self._assembler.feed(frame)
        if text is None:
            return None
        try:
            message = decode_client(text)
        except BadRequest as exc:
            return Reply(response_frames(exc.request_id, exc.status, str(exc)))
        if message is None:
            return None
        if isinstance(message, ClientControl):
            return Reply(PONG_FRAMES) if isinstance(message.d, Ping) else None
        assert isinstance(message, ClientData)
        return message.d

    # -- listens -----------------------------------------------------------------
    def add_listen(self, entry: ListenEntry) -> ListenEntry | None:
        """Register ``entry``; returns the entry it replaced (same path and query), if any."""
        old = self._listens.get(entry.key)
        self._listens[entry.key] = entry
        return old

    def remove_listen(self, path: Path, query_id: str) -> ListenEntry | None:
        return self._listens.pop((path, query_id), None)

    def get_listen(self, path: Path, query_id: str) -> ListenEntry | None:
        return self._listens.get((path, query_id))

    def listens(self) -> Iterator[ListenEntry]:
        return iter(list(self._listens.values()))

    def clear_listens(self) -> list[ListenEntry]:
        entries = list(self._listens.values())
        self._listens.clear()
        return entries


def tag_of(value: int | UnsetType) -> int | None:
    return None if value is UNSET else value
