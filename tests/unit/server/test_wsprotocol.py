"""rtdb's native WebSocket protocol class driven with a stand-in transport (no sockets)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from rtdb.server.wsprotocol import WsServer


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
