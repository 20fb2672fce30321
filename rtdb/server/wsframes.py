"""RFC 6455 for ``/.ws``, through websockets' sans-I/O protocol.

:func:`handshake` answers the opening handshake with a throwaway
``ServerProtocol`` (its validation and its 101 or error response); each open
connection then keeps a bare server-side ``Protocol`` in the OPEN state for its
frames (its handshake parser would otherwise live as long as the connection).
:class:`WsPeer` turns received bytes into complete text messages (fragments
joined, pings answered, the closing handshake and protocol errors handled by
websockets) and queues what must be written back. Messages to clients are
framed once with :func:`text_frame` and the same bytes go to every connection
that receives them. No extensions are negotiated (no permessage-deflate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Protocol, Side, State
from websockets.server import ServerProtocol

MAX_REQUEST_BYTES = 64 * 1024

CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007

_quiet = logging.getLogger("rtdb.ws.protocol")  # websockets logs every closed connection at INFO
_quiet.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The answer to an upgrade request: the bytes to write and, when it succeeded, the request."""

    response: bytes
    request: Request | None


def request_path(head: bytes) -> str:
    """The path of an HTTP request head (without its query), to route it before parsing it."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    return line[1].split(b"?", 1)[0].decode("latin-1") if len(line) == 3 else ""


def handshake(head: bytes) -> Handshake:
    """Answer the opening handshake in ``head`` (a complete HTTP request head)."""
    protocol = ServerProtocol(logger=_quiet)
    protocol.receive_data(head)
    events = protocol.events_received()
    accepted: Request | None = None
    if events and isinstance(events[0], Request):
        response = protocol.accept(events[0])
        protocol.send_response(response)
        if response.status_code == 101:
            accepted = events[0]
    return Handshake(b"".join(protocol.data_to_send()), accepted)


def text_frame(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode("utf-8")).serialize(mask=False)


class WsPeer:
    """One open connection's frames (the server side)."""

    __slots__ = ("_binary", "_parts", "protocol")

    def __init__(self, max_size: int) -> None:
        self.protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=max_size, logger=_quiet)
        self._parts: list[bytes] | None = None  # the fragments of a message in progress
        self._binary = False

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN

    def receive(self, data: bytes) -> list[str]:
        """The complete messages in ``data`` (binary ones decoded leniently). After a close
        or a protocol error, :meth:`output` holds the closing frames and the end of stream."""
        protocol = self.protocol
        if protocol.state is State.CLOSED:
            return []
        protocol.receive_data(data)
        messages: list[str] = []
        for frame in protocol.events_received():
            assert isinstance(frame, Frame)  # after the handshake, only frames
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._parts = [bytes(frame.data)]
                self._binary = opcode is Opcode.BINARY
            elif opcode is Opcode.CONT and self._parts is not None:
                self._parts.append(bytes(frame.data))
            else:
                continue  # ping, pong, close: websockets has answered what needs an answer
            if not frame.fin:
                continue
            payload = b"".join(self._parts)
            self._parts = None
            if self._binary:
                messages.append(payload.decode("utf-8", errors="replace"))
                continue
            try:
                messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                protocol.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
                return messages
        return messages

    def output(self) -> tuple[bytes, bool]:
        """What to write to the socket, and whether to close it afterwards."""
        writes = self.protocol.data_to_send()
        eof = bool(writes) and writes[-1] == b""
        return b"".join(writes), eof

    def ping(self) -> None:
        if self.open:
            self.protocol.send_ping(b"")

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (nothing if it already started)."""
        if self.open:
            self.protocol.send_close(code, reason)
