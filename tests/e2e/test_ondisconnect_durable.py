"""onDisconnect survives its node: two real `rtdb serve` nodes sharing one PostgreSQL schema
(tests/e2e/cluster_helpers.py). A client registers its onDisconnect writes on node 1; whatever
becomes of its connection or of node 1 (a clean close, SIGKILL, SIGSTOP past the lease, the
client reconnecting to node 2 with ``ls=``), they run exactly once. Each op includes an
increment at ``/runs/<client>``: its final value is how many times the ops ran."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import Cluster, Wire, require_redis, wait_until
from unit.storage.pg_service import fresh_url
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

NS = "presence"
LEASE_S = 3.0
"""The nodes' lease (``--node-lease-s``; the default is 10 s)."""
SWEEP_S = LEASE_S / 5
EXTRA = ("--node-lease-s", str(LEASE_S))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_redis()
    with fresh_url() as url, Cluster(tmp_path, database_url=url, args=("--emulator", *EXTRA)) as c:
        c.start(2)
        yield c


@contextmanager
def client(host: str, ls: str | None = None) -> Iterator[Wire]:
    query = f"v=5&ns={NS}" + (f"&ls={ls}" if ls else "")
    with connect(f"ws://{host}/.ws?{query}", open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["d"]["t"] == "h", hello
        yield Wire(ws, hello["d"]["d"])


def register_presence(wire: Wire, who: str) -> str:
    """``who`` is online; on disconnect: offline, and one more run counted. The session id."""
    assert wire.request("p", {"p": f"/status/{who}", "d": "online"})["s"] == "ok"
    assert wire.request("o", {"p": f"/status/{who}", "d": "offline"})["s"] == "ok"
    assert wire.request("om", {"p": "/runs", "d": {who: {".sv": {"increment": 1}}}})["s"] == "ok"
    session: str = wire.hello["s"]
    return session


def get(node: Any, path: str) -> Any:
    return httpx.get(f"{node.url}{path}.json?ns={NS}", timeout=10).json()


def test_a_clean_close_runs_the_ops_once(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    with client(n1.host) as wire:
        register_presence(wire, "ada")
        assert get(n2, "/status/ada") == "online"
    wait_until(lambda: get(n2, "/status/ada") == "offline", 10, "the onDisconnect set")
    time.sleep(2 * SWEEP_S)  # a sweep finds nothing left to run
    assert get(n2, "/runs/ada") == 1


def test_a_cancelled_op_does_not_run(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    with client(n1.host) as wire:
        register_presence(wire, "bo")
        assert wire.request("oc", {"p": "/status/bo"})["s"] == "ok"
    wait_until(lambda: get(n2, "/runs/bo") == 1, 10, "the remaining op")
    assert get(n2, "/status/bo") == "online"


def test_ops_of_a_sigkilled_node_run_once_on_the_other_within_the_lease(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    with client(n1.host) as wire:
        register_presence(wire, "cy")
        killed = time.monotonic()
        n1.kill()
        wait_until(lambda: get(n2, "/status/cy") == "offline", LEASE_S + 3 * SWEEP_S + 3, "the sweeper")
        took = time.monotonic() - killed
    time.sleep(2 * SWEEP_S)
    assert get(n2, "/runs/cy") == 1
    assert took > LEASE_S * 0.5, "run by the sweeper, after the lease"


def test_ls_takeover_on_another_node_runs_the_old_ops_before_the_new_sessions_writes(cluster: Cluster) -> None:
    """Node 1 dies; the client is back on node 2 at once, long before the lease runs out."""
    n1, n2 = cluster.nodes
    with client(n1.host) as old:
        session = register_presence(old, "dee")
        n1.kill()
    back = time.monotonic()
    with client(n2.host, ls=session) as new:
        assert new.request("p", {"p": "/status/dee", "d": "online"})["s"] == "ok"
        assert get(n2, "/runs/dee") == 1  # the old session's ops ran before this write was served
        assert time.monotonic() - back < LEASE_S
        assert get(n2, "/status/dee") == "online"
        time.sleep(LEASE_S + 3 * SWEEP_S)  # node 1's lease runs out: its sweep finds nothing
        assert get(n2, "/status/dee") == "online"
        assert get(n2, "/runs/dee") == 1


def test_ls_takeover_closes_the_old_session_on_its_live_node(cluster: Cluster) -> None:
    """A half-open connection on node 1: node 2 takes the session over and node 1 closes it."""
    n1, n2 = cluster.nodes
    with client(n1.host) as old:
        session = register_presence(old, "eve")
        with client(n2.host, ls=session) as new:
            assert new.request("p", {"p": "/status/eve", "d": "online"})["s"] == "ok"
            assert get(n2, "/runs/eve") == 1
            old.wait(lambda: old.closed, 10)
        assert get(n1, "/status/eve") == "online"
        assert get(n1, "/runs/eve") == 1


def test_ls_takeover_is_refused_to_another_user(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    with client(n1.host) as old:
        admin = {"cred": "owner"}
        assert old.request("auth", admin)["s"] == "ok"
        session = register_presence(old, "fay")
        with client(n2.host, ls=session) as stranger:  # anonymous: not who registered them
            assert stranger.request("p", {"p": "/status/fay", "d": "online"})["s"] == "ok"
            assert get(n2, "/runs/fay") is None
    wait_until(lambda: get(n2, "/runs/fay") == 1, 10, "the ops, at the old session's close")


def test_a_node_stopped_past_its_lease_is_swept_then_fences_itself(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    assert n1.proc is not None
    with client(n1.host) as wire:
        register_presence(wire, "gus")
        n1.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: get(n2, "/status/gus") == "offline", LEASE_S + 3 * SWEEP_S + 3, "the sweeper")
        finally:
            n1.proc.send_signal(signal.SIGCONT)
        wire.wait(lambda: wire.closed, 10)
        assert wire.ws.close_code == 1012  # fenced: its clients reconnect elsewhere
    assert get(n2, "/runs/gus") == 1
    assert "fenced" in n1.log()
    wait_until(lambda: httpx.put(f"{n1.url}/after.json?ns={NS}", json=1, timeout=10).status_code == 200,
               10, "node 1 to rejoin and accept writes")
    time.sleep(2 * SWEEP_S)
    assert get(n2, "/runs/gus") == 1
