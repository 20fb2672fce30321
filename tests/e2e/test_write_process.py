"""`rtdb serve --write-process`: writes run in a child process that owns the SQLite write
connections. Real processes, real sockets, real SQLite files. (The official JS SDK suite
also runs against it: tests/e2e/test_js_sdk.py.)"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from cluster_helpers import wires as open_wires
from conftest import RTDB, RunningServer, free_port
from test_workers import _alive

pytestmark = pytest.mark.e2e


def _writer_pid(server: RunningServer) -> int | None:
    return httpx.get(server.url + "/healthz", timeout=5).json().get("writer_pid")


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    server: RunningServer = server_factory("--emulator", "--write-process")
    httpx.put(server.url + "/warm.json", json=True).raise_for_status()  # the first write starts the child
    assert _writer_pid(server) not in (None, os.getpid())
    return server


def test_pipelined_writes_are_heard_in_one_order_and_before_their_acks(server: RunningServer) -> None:
    with open_wires(server.host, 4, ns="shared") as wires:
        for w in wires:
            assert w.request("q", {"p": "/log", "h": ""})["s"] == "ok"
        writer = wires[0]
        for i in range(300):
            writer.send("p", {"p": f"/log/k{i:03d}", "d": i})
        writer.wait(lambda: len(writer.acks) >= 301)
        assert all(b["s"] == "ok" for b in writer.acks.values())
        for i in range(300):  # each write reached its own connection before its ack
            ack_at = writer.order.index(("ack", 2 + i))
            before = [e["b"]["p"].strip("/") for kind, e in writer.order[:ack_at] if kind == "push"]
            assert f"log/k{i:03d}" in before
        for w in wires:
            w.wait(lambda w=w: len(w.values()) >= 300)
        seen = [w.values()[-300:] for w in wires]
    assert [(p.strip("/"), d) for p, d in seen[0]] == [(f"log/k{i:03d}", i) for i in range(300)]
    assert all(s == seen[0] for s in seen)
    stored = httpx.get(server.url + "/log.json?ns=shared").json()
    assert stored == {f"k{i:03d}": i for i in range(300)}


def test_rules_errors_and_preconditions_come_back_from_the_child(server: RunningServer) -> None:
    rules = {"rules": {".read": True, "open": {".write": True}, "closed": {".write": False}}}
    httpx.put(server.url + "/.settings/rules.json?ns=ruled", json=rules,
              headers={"Authorization": "Bearer owner"}).raise_for_status()
    base = server.url
    assert httpx.put(base + "/open/a.json?ns=ruled", json={"t": {".sv": "timestamp"}}).status_code == 200
    denied = httpx.put(base + "/closed/a.json?ns=ruled", json=1)
    assert (denied.status_code, denied.json()) == (401, {"error": "Permission denied"})
    stale = httpx.put(base + "/open/a.json?ns=ruled", json=2, headers={"if-match": "not-the-etag"})
    assert stale.status_code == 412 and "t" in stale.json()
    bad = httpx.patch(base + "/open.json?ns=ruled", json={"a": 1, "a/b": 2})
    assert bad.status_code == 400 and "ancestor" in bad.json()["error"]


def test_a_changed_rules_file_reaches_the_child(server_factory: Any, tmp_path: Any) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"rules": {".read": true, ".write": true}}')
    server: RunningServer = server_factory("--write-process", "--rules", str(rules))
    assert httpx.put(server.url + "/x.json", json=1).status_code == 200
    rules.write_text('{"rules": {".read": true, "x": {".write": false}}}')
    deadline = time.monotonic() + 15
    accepted = 1
    while (status := httpx.put(server.url + "/x.json", json=accepted + 1).status_code) != 401:
        assert status == 200 and time.monotonic() < deadline, "the new rules file never applied to writes"
        accepted += 1
        time.sleep(0.1)
    assert httpx.get(server.url + "/x.json").json() == accepted


def test_a_killed_child_loses_no_acknowledged_write_and_is_replaced(server: RunningServer) -> None:
    victim = _writer_pid(server)
    assert victim is not None
    with open_wires(server.host, 2, ns="k") as (writer, listener):
        assert listener.request("q", {"p": "/w", "h": ""})["s"] == "ok"
        for i in range(20000):
            writer.send("p", {"p": f"/w/k{i}", "d": i})
        writer.wait(lambda: len(writer.acks) >= 1)
        os.kill(victim, signal.SIGKILL)
        # writes in flight fail, and the namespace's clients are told to start over (1012)
        deadline = time.monotonic() + 20
        while listener.ws.close_code is None or writer.ws.close_code is None:
            assert time.monotonic() < deadline, "the clients were not restarted"
            time.sleep(0.05)
        assert (listener.ws.close_code, writer.ws.close_code) == (1012, 1012)
        acked = [r - 1 for r, b in writer.acks.items() if b["s"] == "ok"]
        failed = [b for b in writer.acks.values() if b["s"] != "ok"]
    assert 0 < len(acked) < 20000
    assert all(b["s"] == "unavailable" for b in failed)
    stored = httpx.get(server.url + "/w.json?ns=k", timeout=10).json()
    assert all(stored.get(f"k{i}") == i for i in acked)
    # the next write starts a new child
    assert httpx.put(server.url + "/after.json?ns=k", json=1).status_code == 200
    assert _writer_pid(server) not in (None, victim)
    assert "the writer process stopped" in server.log()


def test_stopping_the_server_stops_the_child(server: RunningServer) -> None:
    child = _writer_pid(server)
    assert child is not None and server.proc is not None
    server.proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the server; it stops the child
    assert server.proc.wait(timeout=20) in (0, 130, -signal.SIGINT)  # 130: the shell's code for SIGINT
    assert "Application shutdown complete" in server.log()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_write_process_with_workers_is_refused(tmp_path: Any) -> None:
    proc = subprocess.run(
        [RTDB, "serve", "--write-process", "--workers", "2", "--port", str(free_port()),
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "--write-process runs with one worker" in proc.stderr



def test_a_killed_server_leaves_no_child_behind(server: RunningServer) -> None:
    child = _writer_pid(server)
    assert child is not None and server.proc is not None
    server.proc.kill()  # no shutdown at all: the child sees its socket close
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _mock_token(claims: dict[str, Any]) -> str:
    """An unsigned token, as the SDKs make for the emulator (JSON written by hand: 2**70 stays an integer)."""
    header, body = (base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                    for part in ({"alg": "none", "typ": "JWT"}, claims))
    return f"{header}.{body}."


def test_claims_beyond_64_bit_integers_reach_the_child_as_doubles(server: RunningServer) -> None:
    """msgpack carries 64-bit integers at most; claims are read as JavaScript reads them (doubles)."""
    rules = {"rules": {".read": True, "big": {".write": "auth.token.big > 1e20 && auth.token.big < 1e22"},
                       "override": {".write": "auth.huge > 1e300"}}}
    httpx.put(server.url + "/.settings/rules.json?ns=claims", json=rules,
              headers={"Authorization": "Bearer owner"}).raise_for_status()
    token = _mock_token({"sub": "ann", "iat": 0, "exp": 3600, "big": 2**70})
    put = httpx.put(server.url + "/big/a.json", params={"ns": "claims", "auth": token}, json=1, timeout=10)
    assert put.status_code == 200, put.text
    huge = '{"uid": "x", "huge": 1' + "0" * 400 + "}"
    override = httpx.put(server.url + "/override/a.json", json=2, timeout=10, headers={"Authorization": "Bearer owner"},
                         params={"ns": "claims", "auth_variable_override": huge})
    assert override.status_code == 200, override.text
    assert httpx.get(server.url + "/big.json?ns=claims").json() == {"a": 1}
    assert httpx.get(server.url + "/override.json?ns=claims").json() == {"a": 2}
