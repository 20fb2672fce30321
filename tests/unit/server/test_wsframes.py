"""RFC 6455 server framing, sans I/O: handshake values, client frame parsing, server frames."""

from __future__ import annotations

import os

import pytest

from rtdb.server.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    FrameParser,
    WebSocketError,
    accept_key,
    check_upgrade,
    close_frame,
    frame,
    parse_close,
    parse_upgrade,
    text_frame,
)


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


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_upgrade_request_is_parsed_and_checked() -> None:
    raw = (b"GET /.ws?v=5&ns=demo HTTP/1.1\r\nhost: 127.0.0.1:9000\r\nupgrade: websocket\r\n"
           b"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n")
    request = parse_upgrade(raw)
    assert (request.path, request.params, request.headers["host"]) == ("/.ws", {"v": "5", "ns": "demo"},
                                                                       "127.0.0.1:9000")
    assert check_upgrade(request) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_upgrade_without_a_valid_key_is_refused() -> None:
    raw = b"GET /.ws HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\n\r\n"
    with pytest.raises(WebSocketError):
        check_upgrade(parse_upgrade(raw))


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_a_masked_text_frame_of_any_length_parses(size: int) -> None:
    payload = b"x" * size
    assert FrameParser(1 << 20).feed(client_frame(OP_TEXT, payload)) == [(OP_TEXT, payload)]


def test_frames_split_anywhere_across_reads_reassemble() -> None:
    data = client_frame(OP_TEXT, b'{"t":"d"}') + client_frame(OP_TEXT, b"y" * 300) + client_frame(OP_PING, b"p")
    parser = FrameParser(1 << 20)
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events == [(OP_TEXT, b'{"t":"d"}'), (OP_TEXT, b"y" * 300), (OP_PING, b"p")]


def test_many_frames_in_one_read() -> None:
    data = b"".join(client_frame(OP_TEXT, str(i).encode()) for i in range(100))
    assert FrameParser(1 << 20).feed(data) == [(OP_TEXT, str(i).encode()) for i in range(100)]


def test_fragments_join_into_one_message_around_a_control_frame() -> None:
    data = (client_frame(OP_BINARY, b"ab", fin=False) + client_frame(OP_PING, b"")
            + client_frame(OP_CONT, b"cd", fin=False) + client_frame(OP_CONT, b"e"))
    assert FrameParser(100).feed(data) == [(OP_PING, b""), (OP_BINARY, b"abcde")]


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
    ],
    ids=["unmasked", "reserved-bit", "lone-continuation", "long-control", "fragmented-control", "unknown-opcode",
         "new-message-inside-fragments"],
)
def test_protocol_violations_close_with_1002(data: bytes) -> None:
    with pytest.raises(WebSocketError) as caught:
        FrameParser(1 << 20).feed(data)
    assert caught.value.code == 1002


def test_a_message_over_the_limit_is_refused_from_its_header() -> None:
    parser = FrameParser(1000)
    with pytest.raises(WebSocketError) as caught:
        parser.feed(client_frame(OP_TEXT, b"x" * 2000)[:20])
    assert caught.value.code == 1009
    with pytest.raises(WebSocketError):
        FrameParser(1000).feed(client_frame(OP_TEXT, b"x" * 600, fin=False) + client_frame(OP_CONT, b"x" * 600))


def test_server_frames_are_unmasked_with_the_shortest_length() -> None:
    assert text_frame("hi") == b"\x81\x02hi"
    assert frame(OP_TEXT, b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert frame(OP_TEXT, b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
    assert close_frame(1000) == b"\x88\x02\x03\xe8"
    assert close_frame(1005) == b"\x88\x00"


def test_close_payload_codes() -> None:
    assert parse_close(b"") == 1005
    assert parse_close(b"\x03\xe8bye") == 1000
    with pytest.raises(WebSocketError):
        parse_close(b"\x03")
    assert FrameParser(10).feed(client_frame(OP_CLOSE, b"\x03\xe8")) == [(OP_CLOSE, b"\x03\xe8")]
