"""A real `rtdb serve --database-url` (PostgreSQL, a schema of its own per test): REST and
WebSocket writes, reads and listens, data kept across a restart, `--workers` ordering
commits through PostgreSQL, and the combination it refuses."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cluster_helpers import put_from_each
from cluster_helpers import wires as open_wires
from conftest import RTDB, RunningServer, free_port
from unit.storage.pg_service import fresh_url

pytestmark = pytest.mark.e2e


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_url() as url:
        yield url


@pytest.fixture
def pg_server(server_factory: Any, database_url: str) -> RunningServer:
    server: RunningServer = server_factory("--emulator", "--database-url", database_url)
    return server


def test_rest_and_websocket_writes_reads_and_listens_are_served_from_postgresql(pg_server: RunningServer,
                                                                                 database_url: str) -> None:
    import psycopg

    url = pg_server.url
    ada = {"name": "Ada", "nul": "a\u0000b", "n": 2**60}
    assert httpx.put(f"{url}/users/ada.json?ns=pg", json=ada).status_code == 200
    with open_wires(pg_server.host, 2, ns="pg") as (listener, writer):
        assert listener.request("q", {"p": "/users", "h": ""})["s"] == "ok"
        listener.wait(lambda: listener.values() != [])
        assert listener.values()[0] == ("users", {"ada": {"name": "Ada", "nul": "a\u0000b", "n": 2**60}})
        assert writer.request("p", {"p": "/users/bob", "d": {"name": "Bob"}})["s"] == "ok"
        listener.wait(lambda: ("users/bob", {"name": "Bob"}) in listener.values())
        assert writer.request("m", {"p": "/users/ada", "d": {"n": 1.5}})["s"] == "ok"
        listener.wait(lambda: any(p[0] == "users/ada" for p in listener.values()))
    got = httpx.get(f"{url}/users.json?ns=pg").json()
    assert got == {"ada": {"name": "Ada", "nul": "a\u0000b", "n": 1.5}, "bob": {"name": "Bob"}}
    with psycopg.connect(database_url) as conn:  # the rows are in PostgreSQL, the seq counts the 3 commits
        assert conn.execute("SELECT name, seq FROM rtdb_namespaces").fetchall() == [("pg", 3)]
        (logged,) = conn.execute("SELECT count(*) FROM rtdb_changelog").fetchone()
        assert logged >= 1
    assert not list(pg_server.data_dir.glob("*.sqlite")), "no SQLite file is made"


def test_data_survives_a_restart_and_the_seq_continues(pg_server: RunningServer) -> None:
    url = pg_server.url
    for i in range(5):
        assert httpx.post(f"{url}/log.json?ns=keep", json={"i": i}).status_code == 200
    before = httpx.get(f"{url}/log.json?ns=keep").json()
    pg_server.restart()
    assert httpx.get(f"{url}/log.json?ns=keep").json() == before
    with open_wires(pg_server.host, 1, ns="keep") as (wire,):
        assert wire.request("q", {"p": "/log", "h": ""})["s"] == "ok"
        assert wire.request("p", {"p": "/after", "d": True})["s"] == "ok"
    assert httpx.get(f"{url}/after.json?ns=keep").json() is True
    assert httpx.get(f"{url}/.inspect/databases.json").status_code == 200


def test_workers_share_one_commit_order_through_postgresql(server_factory: Any, database_url: str) -> None:
    server: RunningServer = server_factory("--emulator", "--workers", "2", "--database-url", database_url)
    with open_wires(server.host, 6) as wires:
        for w in wires:
            assert w.request("q", {"p": "/counter", "h": ""})["s"] == "ok"
        writers = wires[:3]
        put_from_each(writers, "/counter", 40)
        final = httpx.get(server.url + "/counter.json?ns=shared").json()
        for w in wires:
            w.wait(lambda w=w: w.values() and w.values()[-1][1] == final)
        seen = [w.values()[-120:] for w in wires]
    assert all(s == seen[0] for s in seen)
    assert sorted((d["by"], d["n"]) for _, d in seen[0]) == [(k, i) for k in range(3) for i in range(40)]


def test_write_process_is_refused_with_a_database_url(tmp_path: Any, database_url: str) -> None:
    proc = subprocess.run([RTDB, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
                           "--database-url", database_url, "--write-process"],
                          capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b"--write-process does not work with --database-url" in proc.stderr
