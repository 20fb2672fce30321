"""Deadlines on half-sent requests, against a real `rtdb serve`: a request head (or a
WebSocket handshake) that is not complete in time gets 408 and its connection is closed,
so connections that never finish cannot hold the server's file descriptors for good."""

from __future__ import annotations

import resource
import socket
import time

import httpx
import pytest
from conftest import RunningServer

pytestmark = pytest.mark.e2e

HEAD_START = b"GET /.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _read_until_closed(sock: socket.socket, timeout: float = 15) -> bytes:
    """What the server sends until it closes the connection (``TimeoutError`` if it never does)."""
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_request_head_never_finished_gets_408_and_is_closed(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(HEAD_START)
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        _read_until_closed(sock)


def test_a_websocket_handshake_never_finished_is_closed(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /.ws?v=5 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "1")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(HEAD_START)  # uvicorn's keep-alive timer stops at the first byte of a request
        assert b"HTTP/1.1 408 " in _read_until_closed(sock)


def test_half_open_connections_lock_clients_out_only_until_their_deadline(server_factory) -> None:  # type: ignore[no-untyped-def]
    """With the open files limit reached by connections that never finish a request, the
    server turns new clients away (it cannot accept them) but neither dies nor stops
    listening: once the deadline closes the half-open ones, a client is served again."""
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "2")
    assert server.proc is not None
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
    held = []
    try:
        for _ in range(120):  # more than the limit: the server runs out of descriptors
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            try:
                sock.sendall(HEAD_START)
            except OSError:  # turned away already
                pass
            held.append(sock)
        deadline = time.monotonic() + 30
        served = False
        while not served and time.monotonic() < deadline:
            try:
                served = httpx.get(server.url + "/.json", timeout=2).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
        assert served, "a client was not served again while the half-open connections stayed open"
        assert server.proc.poll() is None
    finally:
        for sock in held:
            sock.close()
    for _ in range(3):  # still listening, and serving writes too
        assert httpx.put(server.url + "/after.json", json={"ok": True}, timeout=5).status_code == 200


def test_connections_waiting_for_their_head_make_way_when_descriptors_run_short(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Long before their deadline, half-open connections that would use up the open files
    limit give way, oldest first, to new connections: a client is served at once."""
    server: RunningServer = server_factory("--emulator", "--header-timeout-s", "600")
    assert server.proc is not None
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (64, 64))
    held = []
    try:
        for _ in range(80):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            try:
                sock.sendall(HEAD_START)
            except OSError:
                pass
            held.append(sock)
        for path in ("/a.json", "/b.json", "/c.json"):  # each closes the oldest half-open one
            assert httpx.put(server.url + path, json=1, timeout=5).status_code == 200
        first = held[0]
        assert _read_until_closed(first).startswith(b"HTTP/1.1 408 ")  # the oldest went first
        assert server.proc.poll() is None
    finally:
        for sock in held:
            sock.close()
