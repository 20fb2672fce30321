"""Dropping and compacting a namespace through a real `rtdb serve` (DELETE /.namespace.json,
POST /.compact.json): admins only, realtime clients told and disconnected, files gone, space
given back; with one process, two workers and a writer process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, error_of
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer owner"}
BIG = {f"k{i:05d}": "x" * 400 for i in range(12_000)}  # ~5 MB of JSON


class Listener:
    """A protocol-v5 client on one WebSocket that listens to one path and records the data
    pushes and how the socket closed."""

    def __init__(self, ws: ClientConnection, path: str, query: dict[str, Any] | None = None) -> None:
        self.ws = ws
        self.data: list[Any] = []
        self.close_code: int | None = None
        self.cond = threading.Condition()
        self.acked = False
        body: dict[str, Any] = {"p": path, "h": ""}
        if query is not None:
            body.update(q=query, t=1)
        threading.Thread(target=self._read, daemon=True).start()
        ws.send(json.dumps({"t": "d", "d": {"r": 1, "a": "q", "b": body}}))
        self.wait(lambda: self.acked, "the listen's ok")

    def _read(self) -> None:
        parts: list[str] = []
        expected = 0
        try:
            for text in self.ws:
                assert isinstance(text, str)
                if not expected and text.isdigit():  # a large message comes as a count, then its frames
                    expected = int(text)
                    continue
                if expected:
                    parts.append(text)
                    if len(parts) < expected:
                        continue
                    text, parts, expected = "".join(parts), [], 0
                d = json.loads(text).get("d", {})
                with self.cond:
                    if d.get("r") == 1:
                        self.acked = True
                    elif d.get("a") in ("d", "m"):
                        self.data.append(d["b"]["d"])
                    self.cond.notify_all()
        except ConnectionClosed:
            pass
        with self.cond:
            self.close_code = self.ws.close_code
            self.cond.notify_all()

    def wait(self, predicate: Any, what: str, timeout: float = 15) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), f"timed out waiting for {what}; data {self.data[-3:]}"


@contextmanager
def listeners(server: RunningServer, ns: str, n: int, path: str = "/items",
              query: dict[str, Any] | None = None) -> Iterator[list[Listener]]:
    with ExitStack() as stack:
        out = []
        for _ in range(n):
            ws = stack.enter_context(connect(f"ws://{server.host}/.ws?v=5&ns={ns}", open_timeout=10))
            assert json.loads(ws.recv(timeout=10))["d"]["t"] == "h"
            out.append(Listener(ws, path, query))
        yield out


def files(data_dir: Path, ns: str) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if p.name.startswith(ns + ".sqlite"))


def drop(server: RunningServer, ns: str) -> dict[str, Any]:
    response = httpx.delete(f"{server.url}/.namespace.json?ns={ns}", headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(params=["one process", "write process"])
def served(request: Any, server_factory: Any) -> RunningServer:
    extra = ["--write-process"] if request.param == "write process" else []
    server: RunningServer = server_factory("--emulator", *extra)
    return server


def test_only_admins_drop_or_compact(server: RunningServer) -> None:
    httpx.put(f"{server.url}/a.json?ns=kept", json=1).raise_for_status()
    assert error_of(httpx.delete(f"{server.url}/.namespace.json?ns=kept"), 401) == "Permission denied"
    assert error_of(httpx.post(f"{server.url}/.compact.json?ns=kept"), 401) == "Permission denied"
    user = {"Authorization": "Bearer owner", "x": "y"}
    override = "&auth_variable_override=" + json.dumps({"uid": "alice"})
    assert error_of(httpx.delete(f"{server.url}/.namespace.json?ns=kept{override}", headers=user), 401)
    assert httpx.get(f"{server.url}/a.json?ns=kept").json() == 1
    assert files(server.data_dir, "kept") != []


def test_a_dropped_namespace_is_gone_and_its_listeners_hear_null_then_reconnect(served: RunningServer) -> None:
    ns = "gone"
    httpx.put(f"{served.url}/items.json?ns={ns}", json=BIG, timeout=60).raise_for_status()
    with listeners(served, ns, 2) as plain, listeners(served, ns, 1, query={"i": ".key", "l": 3, "vf": "l"}) as q:
        for listener in plain + q:
            listener.wait(lambda listener=listener: listener.data, "the initial data")
        events = httpx.Client(timeout=30)
        with events.stream("GET", f"{served.url}/items.json?ns={ns}", headers={"Accept": "text/event-stream"}) as sse:
            lines = sse.iter_lines()
            assert next(lines) == "event: put"
            assert json.loads(next(lines).removeprefix("data: "))["data"]["k00000"] == "x" * 400
            answer = drop(served, ns)
            assert answer["dropped"] is True and answer["bytesFreed"] > len(json.dumps(BIG)) / 2
            for listener in plain + q:
                listener.wait(lambda listener=listener: listener.close_code is not None, "the close")
                assert listener.data[-1] is None  # told before the close
                assert listener.close_code == 1012  # service restart: reconnect and listen again
            rest = [line for line in lines if line]
            assert rest[:2] == ["event: put", 'data: {"path":"/","data":null}']
        events.close()
    assert files(served.data_dir, ns) == []
    assert httpx.get(f"{served.url}/items.json?ns={ns}").json() is None
    assert "gone" not in [d["name"] for d in httpx.get(f"{served.url}/.inspect/databases.json").json()]
    with listeners(served, ns, 1) as [again]:
        again.wait(lambda: again.acked, "the listen")
        httpx.put(f"{served.url}/items/new.json?ns={ns}", json="fresh").raise_for_status()
        again.wait(lambda: again.data and again.data[-1] == "fresh" or again.data[-1:] == [{"new": "fresh"}],
                   "a write to the new namespace")
    assert httpx.get(f"{served.url}/.json?ns={ns}").json() == {"items": {"new": "fresh"}}
    assert drop(served, "never-was") == {"namespace": "never-was", "dropped": False, "bytesFreed": 0}


def test_on_disconnect_writes_do_not_bring_a_dropped_namespace_back(server: RunningServer) -> None:
    ns = "presence"
    httpx.put(f"{server.url}/online.json?ns={ns}", json={"me": True}).raise_for_status()
    with listeners(server, ns, 1, path="/online") as [me]:
        me.ws.send(json.dumps({"t": "d", "d": {"r": 2, "a": "o", "b": {"p": "/online/me", "d": False}}}))
        me.wait(lambda: len(me.data) >= 1, "the listen")
        drop(server, ns)
        me.wait(lambda: me.close_code is not None, "the close")
    assert httpx.get(f"{server.url}/.json?ns={ns}").json() is None
    assert files(server.data_dir, ns) == []


@pytest.mark.parametrize("extra", [[], ["--write-process"]], ids=["one process", "write process"])
def test_compacting_gives_the_space_of_deleted_data_back(server_factory: Any, extra: list[str]) -> None:
    served: RunningServer = server_factory("--emulator", "--vacuum-free-percent", "0", *extra)  # on demand only
    ns = "shrinks"
    httpx.put(f"{served.url}/items.json?ns={ns}", json=BIG, timeout=60).raise_for_status()
    httpx.put(f"{served.url}/items.json?ns={ns}", json={"k": 1}).raise_for_status()
    with listeners(served, ns, 1) as [listener]:
        response = httpx.post(f"{served.url}/.compact.json?ns={ns}", headers=ADMIN, timeout=60)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["namespace"] == ns and report["autoVacuum"] == "incremental"
        assert report["bytesBefore"] > len(json.dumps(BIG)) / 2
        assert report["bytesAfter"] < report["bytesBefore"] / 10
        assert report["pagesFreed"] > 0
        httpx.put(f"{served.url}/items/k.json?ns={ns}", json=2).raise_for_status()  # served as before
        listener.wait(lambda: listener.data[-1:] in ([2], [{"k": 2}]), "a write after compaction")
    assert httpx.get(f"{served.url}/items.json?ns={ns}").json() == {"k": 2}
    assert error_of(httpx.post(f"{served.url}/.compact.json?ns=nothing-here", headers=ADMIN), 404)
    assert error_of(httpx.get(f"{served.url}/.compact.json?ns={ns}", headers=ADMIN), 400)


def test_deleted_data_is_given_back_without_asking(served: RunningServer) -> None:
    ns = "auto"
    httpx.put(f"{served.url}/items.json?ns={ns}", json=BIG, timeout=60).raise_for_status()
    file, wal = served.data_dir / f"{ns}.sqlite", served.data_dir / f"{ns}.sqlite-wal"

    def on_disk() -> int:
        return sum(p.stat().st_size for p in (file, wal) if p.exists())

    full = on_disk()
    assert full > len(json.dumps(BIG)) / 2
    httpx.delete(f"{served.url}/items.json?ns={ns}").raise_for_status()
    deadline = time.monotonic() + 30  # a wait, not a timed assertion: the writer does it between writes
    while on_disk() > full / 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert on_disk() <= full / 10, (on_disk(), full)
    assert httpx.get(f"{served.url}/.json?ns={ns}").json() is None


def _pid(server: RunningServer) -> int:
    with httpx.Client(timeout=5) as client:
        return int(client.get(server.url + "/healthz").json()["pid"])


def test_every_worker_lets_go_of_a_dropped_namespace(server_factory: Any) -> None:
    server: RunningServer = server_factory("--emulator", "--workers", "2")
    assert len({_pid(server) for _ in range(40)}) == 2
    ns = "shared-drop"
    httpx.put(f"{server.url}/items.json?ns={ns}", json={"a": 1, "b": 2}).raise_for_status()
    with listeners(server, ns, 8) as clients:  # on both workers (2 ** -7 that all land on one)
        for client in clients:
            client.wait(lambda client=client: client.data, "the initial data")
        for _ in range(8):  # both workers have the namespace open
            with httpx.Client(timeout=10) as fresh:
                assert fresh.get(f"{server.url}/items/a.json?ns={ns}").json() == 1
        drop(server, ns)
        for client in clients:
            client.wait(lambda client=client: client.close_code is not None, "the close")
            assert client.data[-1] is None and client.close_code == 1012
    assert files(server.data_dir, ns) == []
    httpx.put(f"{server.url}/items.json?ns={ns}", json={"c": 3}).raise_for_status()
    for _ in range(12):  # whichever worker answers reads the new namespace, not a stale file
        with httpx.Client(timeout=10) as fresh:
            assert fresh.get(f"{server.url}/items.json?ns={ns}").json() == {"c": 3}
    with listeners(server, ns, 6) as clients:
        for client in clients:
            client.wait(lambda client=client: client.data and client.data[-1] == {"c": 3}, "the new data")
        httpx.patch(f"{server.url}/items.json?ns={ns}", json={"d": 4}).raise_for_status()
        for client in clients:
            client.wait(lambda client=client: client.data[-1] in ({"d": 4}, {"c": 3, "d": 4}), "the next write")
