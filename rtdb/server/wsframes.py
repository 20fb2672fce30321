"""RFC 6455 for the server side, sans I/O: the opening handshake and frames.

:func:`parse_upgrade` reads the HTTP upgrade request, :func:`handshake_response`
answers it; :class:`FrameParser` turns received bytes into complete messages and
control frames (client frames must be masked, fragments are reassembled, sizes
are bounded); :func:`text_frame` and :func:`close_frame` build the unmasked
frames a server sends. No extensions are negotiated (no permessage-deflate).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from urllib.parse import parse_qsl

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships with websockets' wheels

    def apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
        n = len(data)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_REQUEST_BYTES = 64 * 1024

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012


class WebSocketError(Exception):
    """The peer broke the protocol; close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# ------------------------------------------------------------------------- handshake


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An HTTP upgrade request: ``path`` without the query, ``params`` from the query
    string, header names lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))


def parse_upgrade(raw: bytes) -> Upgrade:
    """The request line and headers of ``raw`` (ending with an empty line)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "malformed header")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query = parts[1].partition("?")
    return Upgrade(parts[0], path, query, headers)


def check_upgrade(request: Upgrade) -> str:
    """The ``Sec-WebSocket-Accept`` value for a valid opening handshake; raises otherwise."""
    headers = request.headers
    if request.method != "GET":
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "the opening handshake must be a GET")
    if "websocket" not in headers.get("upgrade", "").lower():
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "missing Upgrade: websocket")
    if "upgrade" not in [t.strip() for t in headers.get("connection", "").lower().split(",")]:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "missing Connection: upgrade")
    if headers.get("sec-websocket-version") != "13":
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "unsupported Sec-WebSocket-Version")
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except ValueError:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "invalid Sec-WebSocket-Key") from None
    return accept_key(key)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def handshake_response(accept: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("ascii")


def error_response(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + data


# ---------------------------------------------------------------------------- frames


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def text_frame(text: str) -> bytes:
    return frame(OP_TEXT, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    if code == CLOSE_NO_STATUS:
        return frame(OP_CLOSE, b"")
    return frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8")[:123])


def parse_close(payload: bytes) -> int:
    """The status code of a close frame's payload (1005 when it has none)."""
    if not payload:
        return CLOSE_NO_STATUS
    if len(payload) == 1:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
    return int.from_bytes(payload[:2], "big")


Event = tuple[int, bytes]
"""``(opcode, payload)``: a complete text/binary message, or a ping, pong or close frame."""


class FrameParser:
    """Client frames → events. Raises :class:`WebSocketError` on a protocol violation
    or a message larger than ``max_size`` bytes."""

    __slots__ = ("_buf", "_max_size", "_need", "_opcode", "_parts", "_size")

    def __init__(self, max_size: int) -> None:
        self._buf: bytearray | None = None  # an incomplete frame
        self._need = 0  # bytes the buffer must hold before parsing again
        self._max_size = max_size
        self._parts: list[bytes] | None = None  # fragments of the message in progress
        self._opcode = 0
        self._size = 0

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf
        if buf is not None:
            buf += data
            if len(buf) < self._need:
                return []
            data = bytes(buf)
            self._buf = None
        out: list[Event] = []
        n = len(data)
        pos = 0
        max_size = self._max_size
        need = 2  # bytes from ``pos`` the next frame needs at least
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            if b0 & 0x70:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved bits must be 0")
            if not b1 & 0x80:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if n - head < 2:
                    need = 4
                    break
                length = int.from_bytes(data[head : head + 2], "big")
                head += 2
            elif length == 127:
                if n - head < 8:
                    need = 10
                    break
                length = int.from_bytes(data[head : head + 8], "big")
                head += 8
            if opcode >= 0x8:
                if not b0 & 0x80 or length > 125:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "fragmented or long control frame")
            elif self._size + length > max_size:
                raise WebSocketError(CLOSE_TOO_BIG, f"message larger than {max_size} bytes")
            end = head + 4 + length
            if end > n:
                need = end - pos
                break
            payload = apply_mask(data[head + 4 : end], data[head : head + 4]) if length else b""
            pos = end
            fin = b0 & 0x80
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if self._parts is not None:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
                if fin:
                    out.append((opcode, payload))
                else:
                    self._parts, self._opcode, self._size = [payload], opcode, length
            elif opcode == OP_CONT:
                if self._parts is None:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "a continuation frame outside a message")
                self._parts.append(payload)
                self._size += length
                if fin:
                    out.append((self._opcode, b"".join(self._parts)))
                    self._parts, self._size = None, 0
            elif opcode in (OP_CLOSE, OP_PING, OP_PONG):
                out.append((opcode, payload))
            else:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if pos < n:
            self._buf = bytearray(data[pos:])
            self._need = need
        return out
