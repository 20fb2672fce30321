"""`rtdb serve --workers 2`: two worker processes on one port share the data files and
relay their commits, so every client sees every write in one order, whichever worker
it reached. Real processes, real sockets, real SQLite files."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest
from cluster_helpers import put_from_each
from cluster_helpers import wires as open_wires
from conftest import RunningServer

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer owner"}


def _pid(server: RunningServer) -> int:
    # a new connection each time, so the kernel picks a worker each time
    with httpx.Client(timeout=5) as client:
        return int(client.get(server.url + "/healthz").json()["pid"])


@pytest.fixture
def workers(server_factory: Any) -> RunningServer:
    server: RunningServer = server_factory("--emulator", "--workers", "2")
    # both workers answer (a new connection lands on either; 2 ** -40 that one never does)
    pids = {_pid(server) for _ in range(40)}
    assert len(pids) == 2, pids
    return server


def test_every_client_sees_every_write_in_one_order_whichever_worker_it_reached(workers: RunningServer) -> None:
    with open_wires(workers.host, 8) as wires:
        for w in wires:
            assert w.request("q", {"p": "/counter", "h": ""})["s"] == "ok"
        writers = wires[:4]
        put_from_each(writers, "/counter", 50)
        final = httpx.get(workers.url + "/counter.json?ns=shared").json()
        for w in wires:
            w.wait(lambda w=w: w.values() and w.values()[-1][1] == final)
        seen = [w.values()[-200:] for w in wires]
    # the 200 writes, each seen once, in the same order by all eight clients
    assert len(seen[0]) == 200
    assert all(s == seen[0] for s in seen)
    assert sorted((d["by"], d["n"]) for _, d in seen[0]) == [(k, i) for k in range(4) for i in range(50)]


def test_a_writer_hears_its_own_write_before_the_ack_while_the_other_worker_writes_too(
    workers: RunningServer,
) -> None:
    with open_wires(workers.host, 6) as wires:
        for w in wires:
            w.request("q", {"p": "/race", "h": ""})
        for w in wires:
            for i in range(30):
                w.send("p", {"p": f"/race/{id(w)}-{i}", "d": i})
        for w in wires:
            w.wait(lambda w=w: len(w.acks) >= 31)
            for i in range(30):
                r = 2 + i
                ack_at = w.order.index(("ack", r))
                key = f"{id(w)}-{i}"
                before = [e for kind, e in w.order[:ack_at] if kind == "push"]
                assert any(_mentions(p, key) for p in before), key


def _mentions(push: dict[str, Any], key: str) -> bool:
    data = push["b"]["d"]
    return push["b"]["p"].endswith("/" + key) or (isinstance(data, dict) and key in data)


def test_rules_deployed_through_one_worker_apply_on_every_worker(workers: RunningServer) -> None:
    httpx.put(workers.url + "/open.json?ns=ruled", json={"x": 1}).raise_for_status()
    with open_wires(workers.host, 6, ns="ruled") as wires:
        for w in wires:
            assert w.request("q", {"p": "/open", "h": ""})["s"] == "ok"
        rules = {"rules": {".read": False, ".write": False}}
        httpx.put(workers.url + "/.settings/rules.json?ns=ruled", json=rules, headers=ADMIN).raise_for_status()
        # every listen, on both workers, is revoked
        for w in wires:
            w.wait(lambda w=w: any(p["a"] == "c" for p in w.pushes))
    for _ in range(12):
        with httpx.Client(timeout=5) as client:
            assert client.get(workers.url + "/open.json?ns=ruled").status_code == 401


def test_a_killed_worker_is_restarted_and_no_data_is_lost(workers: RunningServer) -> None:
    httpx.put(workers.url + "/kept.json", json={"n": 1}).raise_for_status()
    victim = _pid(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    pids: set[int] = set()
    while time.monotonic() < deadline:
        try:
            pids.add(_pid(workers))
        except httpx.HTTPError:
            pass
        if len(pids - {victim}) == 2:
            break
        time.sleep(0.05)
    assert len(pids - {victim}) == 2, pids
    assert httpx.get(workers.url + "/kept.json").json() == {"n": 1}
    assert "restarting it" in workers.log()


def test_the_supervisor_stops_its_workers(workers: RunningServer) -> None:
    pids = {_pid(workers) for _ in range(20)}
    assert workers.proc is not None
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(timeout=20) == 0
    for pid in pids:
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] != "Z"


def test_event_streams_on_either_worker_get_writes_made_through_either(workers: RunningServer) -> None:
    from test_sse import EventReader  # the SSE tests' reader

    readers = [EventReader(workers.url + "/feed.json") for _ in range(6)]
    try:
        for reader in readers:
            assert reader.next() == ("put", {"path": "/", "data": None})
        for i in range(10):
            with httpx.Client(timeout=5) as client:  # a new connection: either worker
                client.put(workers.url + f"/feed/k{i}.json", json=i).raise_for_status()
        for reader in readers:
            assert [reader.next() for _ in range(10)] == [("put", {"path": f"/k{i}", "data": i}) for i in range(10)]
    finally:
        for reader in readers:
            reader.close()


def test_a_bad_rules_file_stops_the_supervisor_at_once(tmp_path: Any) -> None:
    import subprocess

    from conftest import RTDB, free_port

    rules = tmp_path / "bad.rules.json"
    rules.write_text('{"rules": {".read": "auth.uid ==="}}')
    proc = subprocess.run(
        [RTDB, "serve", "--workers", "2", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
         "--rules", str(rules)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "worker 0 started" not in proc.stderr


def test_workers_0_starts_one_per_core(server_factory: Any) -> None:
    server = server_factory("--emulator", "--workers", "0")
    cores = os.cpu_count() or 1
    if cores > 1:
        assert f"rtdb: {cores} workers on" in server.log()
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_listeners_on_every_worker_hear_the_write_that_creates_their_namespace(workers: RunningServer) -> None:
    with open_wires(workers.host, 8, ns="unborn") as wires:
        for w in wires:
            assert w.request("q", {"p": "/room", "h": ""})["s"] == "ok"
        assert not (workers.data_dir / "unborn.sqlite").exists(), "a listen creates nothing"
        for i in range(4):  # each on a new connection: the kernel picks a worker each time
            assert httpx.put(f"{workers.url}/room/m{i}.json?ns=unborn", json=i).status_code == 200
        for w in wires:
            w.wait(lambda w=w: [d for _, d in w.values()] == [0, 1, 2, 3])
