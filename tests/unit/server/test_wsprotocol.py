"""rtdb's native WebSocket protocol (the one ``rtdb serve`` runs) driven with a stand-in
transport, no sockets: a websockets client's handshake and masked frames go in, and the
exact bytes the server writes are checked."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from unit.server.wire_client import HOST, Wire

from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.server.auth import Authenticator
from rtdb.server.lane import MAX_IN_FLIGHT
from rtdb.server.settings import Settings
from rtdb.server.ws import WsEndpoint
from rtdb.server.wsframes import MAX_REQUEST_BYTES
from rtdb.server.wsprotocol import MAX_MESSAGE_BYTES, WRITE_BUFFER_HIGH, WsServer


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()


def _protocol(server: WsServer) -> tuple[Any, Transport, SimpleNamespace]:
    state = SimpleNamespace(connections=set(), tasks=set())
    protocol = server.protocol_class()(None, state, {})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport, state


async def test_a_handshake_request_not_finished_in_time_gets_408_and_is_closed() -> None:
    server = WsServer(None, header_timeout=0.05)  # type: ignore[arg-type]  # no endpoint: no handshake completes
    protocol, transport, state = _protocol(server)
    protocol.data_received(b"GET /.ws?v=5 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    await asyncio.wait_for(transport.closed.wait(), 5)
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    protocol.connection_lost(None)
    assert state.connections == set()


async def test_a_connection_closed_before_its_deadline_leaves_no_timer() -> None:
    server = WsServer(None, header_timeout=3600)  # type: ignore[arg-type]
    protocol, transport, _ = _protocol(server)
    timer = protocol._deadline
    assert timer is not None and not timer.cancelled()
    protocol.connection_lost(None)
    assert timer.cancelled() and protocol._deadline is None


# -- the production protocol end to end in-process: real client bytes in, exact bytes out -----


NOW_MS = 1_700_000_000_000


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[WsEndpoint]:
    settings = Settings(data_dir=tmp_path, emulator=True)
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=True)), clock=lambda: NOW_MS)
    yield WsEndpoint(engine, settings, Authenticator(settings))
    await engine.close()


def _frame(text: str) -> bytes:
    """An unmasked text frame from the server, FIN set."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def _accept(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


async def _opened(endpoint: WsEndpoint) -> tuple[Wire, str]:
    """A wire past its handshake; the session id of its hello."""
    wire = Wire(endpoint)
    wire.send(wire.handshake_bytes())
    data = await wire.written(lambda d: b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n", 1)[1]) > 2)
    head, frame = data.split(b"\r\n\r\n", 1)
    wire.client.receive_data(head + b"\r\n\r\n")  # the client is open from here
    assert wire.client.events_received()[0].status_code == 101
    hello = json.loads(frame[2:])
    return wire, hello["d"]["d"]["s"]


async def test_the_handshake_is_answered_with_101_then_the_hello_frame(endpoint: WsEndpoint) -> None:
    wire = Wire(endpoint)
    wire.send(wire.handshake_bytes())
    data = await wire.written(lambda d: b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n", 1)[1]) > 2)
    head, frame = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    headers = {k.lower(): v for k, _, v in (line.decode().partition(": ") for line in lines[1:])}
    assert headers["upgrade"].lower() == "websocket" and headers["connection"].lower() == "upgrade"
    assert headers["sec-websocket-accept"] == _accept(wire.request.headers["Sec-WebSocket-Key"])
    assert "sec-websocket-extensions" not in headers  # no permessage-deflate
    session_id = json.loads(frame[2:])["d"]["d"]["s"]
    hello = f'{{"t":"c","d":{{"t":"h","d":{{"ts":{NOW_MS},"v":"5","h":"{HOST}","s":"{session_id}"}}}}}}'
    assert frame == _frame(hello)
    assert wire.transport.high == WRITE_BUFFER_HIGH
    await wire.close()


async def test_a_put_is_answered_with_one_frame(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    wire.send_text('{"t":"d","d":{"r":1,"a":"p","b":{"p":"/a","d":1}}}')
    data = await wire.written(bool)
    assert data == _frame('{"t":"d","d":{"r":1,"b":{"s":"ok","d":""}}}')
    await wire.close()


async def test_a_listen_gets_its_data_then_its_ok_and_later_writes(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    wire.send_text('{"t":"d","d":{"r":1,"a":"p","b":{"p":"/users/ann","d":{"age":3}}}}')
    wire.send_text('{"t":"d","d":{"r":2,"a":"q","b":{"p":"/users","h":""}}}')
    wire.send_text('{"t":"d","d":{"r":3,"a":"p","b":{"p":"/users/bob","d":true}}}')
    expected = b"".join([
        _frame('{"t":"d","d":{"r":1,"b":{"s":"ok","d":""}}}'),
        _frame('{"t":"d","d":{"a":"d","b":{"p":"users","d":{"ann":{"age":3}}}}}'),
        _frame('{"t":"d","d":{"r":2,"b":{"s":"ok","d":{}}}}'),
        _frame('{"t":"d","d":{"a":"d","b":{"p":"users/bob","d":true}}}'),
        _frame('{"t":"d","d":{"r":3,"b":{"s":"ok","d":""}}}'),
    ])
    assert await wire.written(lambda d: len(d) >= len(expected)) == expected
    await wire.close()


async def test_a_ping_gets_a_pong_with_its_payload(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    wire.client.send_ping(b"hi")
    wire.send(b"".join(wire.client.data_to_send()))
    assert await wire.written(bool) == b"\x8a\x02hi"  # unmasked pong, FIN set
    await wire.close()


async def test_the_keepalive_sweep_pings_a_silent_connection_then_drops_it(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    wire.protocol.keepalive()  # traffic since the last sweep: nothing sent
    assert wire.transport.take() == b""
    wire.protocol.keepalive()
    assert wire.transport.take() == b"\x89\x00"  # silent for a whole interval: pinged
    wire.protocol.keepalive()
    assert wire.transport.take() == b"\x88\x14\x03\xe9keep-alive timeout"  # 1001, then closed
    assert wire.transport.closing
    await wire.close()


async def test_a_close_from_the_client_is_answered_and_the_socket_closed(endpoint: WsEndpoint) -> None:
    wire, session_id = await _opened(endpoint)
    assert session_id in endpoint.connections
    wire.client.send_close(1000)
    wire.send(b"".join(wire.client.data_to_send()))
    assert wire.transport.take() == b"\x88\x02\x03\xe8"  # the close echoed: 1000
    assert wire.transport.closing
    await wire.close()
    assert session_id not in endpoint.connections


async def test_a_plain_http_request_to_the_endpoint_is_refused(endpoint: WsEndpoint) -> None:
    wire = Wire(endpoint)
    wire.send(b"GET /.ws?v=5 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n\r\n")
    data = wire.transport.take()
    assert data.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 426 ")), data
    assert wire.transport.closing and endpoint.connections == {}
    await wire.close()


async def test_request_headers_beyond_the_limit_get_431(endpoint: WsEndpoint) -> None:
    wire = Wire(endpoint)
    wire.send(b"GET /.ws?v=5 HTTP/1.1\r\nX-Big: " + b"x" * (MAX_REQUEST_BYTES + 1))
    assert wire.transport.take().startswith(b"HTTP/1.1 431 ")
    assert wire.transport.closing
    await wire.close()


async def test_a_frame_larger_than_the_message_limit_closes_with_1009(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    size = MAX_MESSAGE_BYTES + 1
    wire.send(b"\x81\xff" + size.to_bytes(8, "big") + b"\x00\x00\x00\x00")  # masked text frame header
    data = wire.transport.take()
    assert data[:4] == b"\x88" + bytes([len(data) - 2]) + (1009).to_bytes(2, "big")
    assert wire.transport.closing
    await wire.close()


async def test_a_full_lane_pauses_reading_the_socket_until_half_is_answered(endpoint: WsEndpoint) -> None:
    wire, _ = await _opened(endpoint)
    connection = next(iter(endpoint.connections.values()))
    block = asyncio.get_running_loop().create_future()

    async def held() -> None:
        await block

    connection.lane.gate(held())  # every later request waits behind it
    for r in range(1, MAX_IN_FLIGHT + 1):
        wire.send_text(f'{{"t":"d","d":{{"r":{r},"a":"p","b":{{"p":"/k","d":{r}}}}}}}')
    assert not wire.transport.reading
    block.set_result(None)
    last_ack = _frame(f'{{"t":"d","d":{{"r":{MAX_IN_FLIGHT},"b":{{"s":"ok","d":""}}}}}}')
    await wire.written(lambda d: d.endswith(last_ack))
    assert wire.transport.reading
    await wire.close()
