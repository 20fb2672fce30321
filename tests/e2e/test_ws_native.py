"""rtdb serve's native /.ws protocol (rtdb.server.wsprotocol) over real sockets: the
RFC 6455 side (ping, close, protocol errors, other paths) and pipelined requests."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from conftest import RunningServer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(inproc_server: Any) -> Any:
    """The app in this test process (conftest's ``InProcessServer``); tests that need a process
    of their own start one with ``server_factory``."""
    return inproc_server


@contextmanager
def _open(server: RunningServer, path: str = "/.ws?v=5&ns=native") -> Iterator[ClientConnection]:
    with connect(f"ws://{server.host}{path}", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["t"] == "c" and hello["d"]["t"] == "h"
        yield ws


def _request(r: int, action: str, body: dict[str, Any]) -> str:
    return json.dumps({"t": "d", "d": {"r": r, "a": action, "b": body}})


def _messages(ws: ClientConnection, until_r: int) -> list[dict[str, Any]]:
    out = []
    while True:
        msg = json.loads(ws.recv(timeout=10))
        out.append(msg["d"])
        if msg["d"].get("r") == until_r:
            return out


def test_pipelined_writes_are_acked_in_order_and_a_later_get_sees_them(server: RunningServer) -> None:
    with _open(server) as ws:
        for r in range(1, 501):
            ws.send(_request(r, "p", {"p": f"/pipe/k{r % 7}", "d": r}))
        ws.send(_request(501, "g", {"p": "/pipe", "q": {}}))
        ws.send(_request(502, "p", {"p": "/pipe/k0", "d": "last"}))
        ws.send(_request(503, "g", {"p": "/pipe/k0", "q": {}}))
        replies = _messages(ws, 503)
    assert [m["r"] for m in replies] == list(range(1, 504))
    assert all(m["b"]["s"] == "ok" for m in replies)
    assert replies[500]["b"]["d"] == {f"k{i}": max(r for r in range(1, 501) if r % 7 == i) for i in range(7)}
    assert replies[502]["b"]["d"] == "last"


def test_a_failed_write_in_a_pipeline_fails_alone(server: RunningServer) -> None:
    with _open(server) as ws:
        ws.send(_request(1, "p", {"p": "/a", "d": 1}))
        ws.send(_request(2, "p", {"p": "/b", "d": {"x": 1}, "h": "not-the-hash"}))
        ws.send(_request(3, "p", {"p": "/c", "d": 3}))
        replies = _messages(ws, 3)
    assert [(m["r"], m["b"]["s"]) for m in replies] == [(1, "ok"), (2, "datastale"), (3, "ok")]


def test_a_listen_between_writes_sees_the_writes_before_it(server: RunningServer) -> None:
    with _open(server) as ws:
        ws.send(_request(1, "p", {"p": "/l/a", "d": 1}))
        ws.send(_request(2, "q", {"p": "/l", "h": ""}))
        ws.send(_request(3, "p", {"p": "/l/b", "d": 2}))
        out = _messages(ws, 3)
    assert out[0] == {"r": 1, "b": {"s": "ok", "d": ""}}
    assert out[1] == {"a": "d", "b": {"p": "l", "d": {"a": 1}}}
    assert out[2]["r"] == 2
    assert out[3] == {"a": "d", "b": {"p": "l/b", "d": 2}}
    assert out[4]["r"] == 3


def test_ping_is_answered_and_keepalive_frames_are_ignored(server: RunningServer) -> None:
    with _open(server) as ws:
        ws.ping(b"hi").wait(5)
        ws.send("0")
        ws.send(_request(1, "s", {"c": {}}))
        assert _messages(ws, 1)[-1]["b"]["s"] == "ok"


def test_a_message_split_in_frames_is_one_request(server: RunningServer) -> None:
    text = _request(1, "p", {"p": "/big", "d": "x" * 40000})
    with _open(server) as ws:
        ws.send("3")
        for i in range(3):
            ws.send(text[i * 16384 : (i + 1) * 16384])
        assert _messages(ws, 1)[-1]["b"]["s"] == "ok"


def _raw_upgrade(server: RunningServer, path: str = "/.ws?v=5&ns=native") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _close_code(sock: socket.socket) -> int:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    pos = 0
    while pos < len(data):  # server frames: unmasked, short; the close frame is the last one
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        if opcode == 0x8:
            return int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
    raise AssertionError(f"no close frame in {data!r}")


def test_an_unmasked_client_frame_closes_with_1002(server: RunningServer) -> None:
    with _raw_upgrade(server) as sock:
        sock.sendall(b"\x81\x03abc")
        assert _close_code(sock) == 1002


def test_invalid_utf8_closes_with_1007(server: RunningServer) -> None:
    mask = os.urandom(4)
    payload = b"\xff\xfe"
    with _raw_upgrade(server) as sock:
        sock.sendall(b"\x81\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        assert _close_code(sock) == 1007


def test_malformed_json_closes_the_connection_and_others_go_on(server: RunningServer) -> None:
    with _open(server) as other, _open(server) as ws:
        ws.send("{not json")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        other.send(_request(1, "p", {"p": "/still", "d": True}))
        assert _messages(other, 1)[-1]["b"]["s"] == "ok"


def test_another_websocket_path_goes_to_the_app(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus), connect(f"ws://{server.host}/elsewhere", open_timeout=5):
        pass
    with _open(server) as ws:
        ws.send(_request(1, "s", {"c": {}}))
        assert _messages(ws, 1)[-1]["b"]["s"] == "ok"


def test_the_endpoint_with_a_trailing_slash_is_the_same_endpoint(server: RunningServer) -> None:
    with _open(server, "/.ws/?v=5&ns=native") as ws:
        ws.send(_request(1, "p", {"p": "/slash", "d": 1}))
        assert _messages(ws, 1)[-1]["b"]["s"] == "ok"


def test_a_plain_http_request_to_the_endpoint_gets_426(server: RunningServer) -> None:
    for path in ("/.ws", "/.ws?v=5&ns=native"):
        reply = httpx.get(f"{server.url}{path}", timeout=5)
        assert reply.status_code == 426, (path, reply.text)
        assert reply.json() == {"error": "WebSocket endpoint: connect with ws://"}
