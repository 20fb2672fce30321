"""The HTTP protocol's per-response transport (one write per response) and its lone-request check."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from rtdb.server.httpprotocol import HttpProtocol, OneWrite, http_protocol_class


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 9000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


async def test_a_head_and_its_body_go_out_as_one_write() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    one.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    one.write(b"more")
    assert transport.writes[-1] == b"more"
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing held
    assert len(transport.writes) == 2


async def test_a_head_without_a_body_yet_goes_out_at_the_end_of_the_turn() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"]
    one.write(b"event: put\n\n")
    assert transport.writes[-1] == b"event: put\n\n"


async def test_closing_writes_what_is_held_first() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    one.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert transport.closed and one.is_closing()


class FakeWebSocket:
    def __init__(self, *, config: Any, server_state: ServerState, app_state: Any) -> None:
        self.state = server_state

    def connection_made(self, transport: Any) -> None:
        self.state.connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        pass



async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


def connect(cls: type[HttpProtocol], state: ServerState) -> HttpProtocol:
    config = Config(app, log_level="warning", ws=FakeWebSocket)  # type: ignore[arg-type]
    config.load()
    protocol = cls(config=config, server_state=state, app_state={})  # type: ignore[arg-type]
    protocol.connection_made(FakeTransport())  # type: ignore[arg-type]
    return protocol


async def test_a_request_is_lone_unless_another_is_under_way_or_a_websocket_is_open() -> None:
    cls = http_protocol_class(10)
    state = ServerState()
    first, second = connect(cls, state), connect(cls, state)
    state.tasks.add(asyncio.get_running_loop().create_future())  # type: ignore[arg-type]  # first's request
    assert first.is_lone()  # the other connection is idle
    state.tasks.add(asyncio.get_running_loop().create_future())  # type: ignore[arg-type]  # a streamed response
    assert not first.is_lone()
    state.tasks.pop()
    websocket = object()
    state.connections.add(websocket)  # type: ignore[arg-type]  # as rtdb's WebSocket protocol adds itself
    assert not first.is_lone()
    state.connections.discard(websocket)  # type: ignore[arg-type]
    second.connection_lost(None)
    assert first.is_lone() and cls.http_open == 1
    first.connection_lost(None)


async def test_a_connection_upgraded_to_a_websocket_stops_counting_as_http() -> None:
    cls = http_protocol_class(10)
    state = ServerState()
    first, second = connect(cls, state), connect(cls, state)
    second.data_received(b"GET /.ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert cls.http_open == 1 and len(state.connections) == 2
    state.tasks.add(asyncio.get_running_loop().create_future())  # type: ignore[arg-type]
    assert not first.is_lone()
    first.connection_lost(None)
