"""/.ws framing over websockets' sans-I/O protocol: the handshake answer, complete messages
from frames, and the closes that protocol errors get."""

from __future__ import annotations

import os

import pytest

from rtdb.server.wsframes import WsPeer, handshake, request_path, text_frame

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9
UPGRADE = (b"GET /.ws?v=5&ns=demo HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code(out: bytes) -> int:
    """The status code of the close frame at the end of ``out`` (server frames: unmasked)."""
    pos = 0
    while pos < len(out):
        opcode, length = out[pos] & 0x0F, out[pos + 1] & 0x7F
        if opcode == OP_CLOSE:
            return int.from_bytes(out[pos + 2 : pos + 4], "big")
        pos += 2 + length
    raise AssertionError(f"no close frame in {out!r}")


def test_the_handshake_is_answered_with_the_rfc_accept_value() -> None:
    answer = handshake(UPGRADE)
    assert answer.response.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer.response
    assert answer.request is not None and answer.request.path == "/.ws?v=5&ns=demo"
    assert answer.request.headers["Host"] == "127.0.0.1:9000"
    assert request_path(UPGRADE) == "/.ws"


@pytest.mark.parametrize("head", [
    UPGRADE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    UPGRADE.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
    UPGRADE.replace(b"Upgrade: websocket\r\n", b""),
])
def test_a_bad_handshake_gets_an_http_error_and_no_connection(head: bytes) -> None:
    answer = handshake(head)
    assert answer.request is None
    assert answer.response.startswith((b"HTTP/1.1 400", b"HTTP/1.1 426"))


def test_not_http_at_all_gets_no_connection() -> None:
    assert handshake(b"\x16\x03\x01 garbage\r\n\r\n").request is None


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_a_text_message_of_any_length_arrives_whole(size: int) -> None:
    peer = WsPeer(1 << 20)
    assert peer.receive(client_frame(OP_TEXT, b"x" * size)) == ["x" * size]


def test_frames_split_anywhere_across_reads_reassemble_and_pings_are_answered() -> None:
    data = client_frame(OP_TEXT, b'{"t":"d"}') + client_frame(OP_PING, b"p") + client_frame(OP_TEXT, "é".encode() * 200)
    peer = WsPeer(1 << 20)
    messages = []
    for i in range(len(data)):
        messages += peer.receive(data[i : i + 1])
    assert messages == ['{"t":"d"}', "é" * 200]
    out, eof = peer.output()
    assert out == b"\x8a\x01p" and not eof  # the pong


def test_fragments_join_into_one_message_around_a_control_frame() -> None:
    data = (client_frame(OP_TEXT, b"ab", fin=False) + client_frame(OP_PING, b"")
            + client_frame(OP_CONT, b"cd", fin=False) + client_frame(OP_CONT, b"e"))
    assert WsPeer(100).receive(data) == ["abcde"]
    assert WsPeer(100).receive(client_frame(OP_BINARY, b"\xffok")) == ["\ufffdok"]


@pytest.mark.parametrize(
    "data",
    [
        client_frame(OP_TEXT, b"x", masked=False),
        client_frame(OP_TEXT, b"x", rsv=0x40),
        client_frame(OP_CONT, b"x"),
        client_frame(OP_PING, b"x" * 126),
        client_frame(OP_PING, b"x", fin=False),
        client_frame(0x3, b"x"),
        client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"),
        client_frame(OP_CLOSE, b"\x03\xed"),  # 1005 may not be sent
    ],
    ids=["unmasked", "reserved-bit", "lone-continuation", "long-control", "fragmented-control", "unknown-opcode",
         "new-message-inside-fragments", "reserved-close-code"],
)
def test_protocol_violations_close_with_1002(data: bytes) -> None:
    peer = WsPeer(1 << 20)
    assert peer.receive(data) == []
    out, eof = peer.output()
    assert close_code(out) == 1002 and eof and not peer.open


def test_invalid_utf8_closes_with_1007_and_too_big_with_1009() -> None:
    peer = WsPeer(1 << 20)
    peer.receive(client_frame(OP_TEXT, b"\xff\xfe"))
    assert close_code(peer.output()[0]) == 1007
    peer = WsPeer(1000)
    peer.receive(client_frame(OP_TEXT, b"x" * 600, fin=False) + client_frame(OP_CONT, b"x" * 600))
    assert close_code(peer.output()[0]) == 1009


def test_a_close_from_the_client_is_answered_and_ends_the_stream() -> None:
    peer = WsPeer(100)
    assert peer.receive(client_frame(OP_CLOSE, b"\x03\xe8bye")) == []
    out, eof = peer.output()
    assert close_code(out) == 1000 and eof
    assert peer.receive(b"anything after") == []


def test_our_own_close_and_ping() -> None:
    peer = WsPeer(100)
    peer.ping()
    peer.close(1012, "restart")
    out, eof = peer.output()
    assert out.startswith(b"\x89\x00") and close_code(out) == 1012
    assert not eof, "the closing handshake waits for the client's close (the transport closes the socket)"
    peer.close(1000)  # already closing: nothing more
    assert peer.output() == (b"", False)


def test_server_frames_are_unmasked_with_the_shortest_length() -> None:
    assert text_frame("hi") == b"\x81\x02hi"
    assert text_frame("x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame("x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
