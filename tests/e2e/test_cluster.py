"""Many nodes, one database: three `rtdb serve --database-url … --redis-url …` processes sharing
a fresh PostgreSQL schema and a Redis, nginx in front (tests/e2e/cluster_helpers.py). Every
client sees every write in one order whichever node it reached; rules, indexes and
preconditions behave as on one node; a Redis restart loses nothing; a PostgreSQL outage gives
clean ``unavailable`` errors, never a false ack, and the nodes recover by themselves."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import Cluster, PrivatePostgres, PrivateRedis, put_from_each, require_redis, wait_until, wires
from unit.storage.pg_service import fresh_url

from rtdb.core.hash import node_hash
from rtdb.core.value import normalize

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer owner"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes and nginx, shared by the tests of this module that do not stop anything."""
    require_redis()
    with fresh_url() as url, Cluster(tmp_path_factory.mktemp("cluster"), database_url=url) as c:
        c.start(3, nginx=True)
        yield c


def _final(c: Cluster, path: str, ns: str) -> list[Any]:
    return [httpx.get(f"{n.url}{path}.json?ns={ns}", timeout=10).json() for n in c.nodes]


def test_concurrent_writers_on_three_nodes_give_every_client_one_order(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    assert cluster.nginx is not None
    hosts = [n1.host, n1.host, n2.host, n2.host, n3.host, n3.host, cluster.nginx.host, cluster.nginx.host]
    with wires(n1.host, 1, "order") as (w1,), wires(n2.host, 1, "order") as (w2,), \
            wires(n3.host, 1, "order") as (w3,):
        with _many(hosts, "order") as listeners:
            for w in [*listeners, w1, w2, w3]:
                assert w.request("q", {"p": "/counter", "h": ""})["s"] == "ok"
            writers = [w1, w2, w3]
            put_from_each(writers, "/counter", 40)
            finals = _final(cluster, "/counter", "order")
            assert finals[0] == finals[1] == finals[2]
            everyone = [*listeners, *writers]
            for w in everyone:
                w.wait(lambda w=w: bool(w.values()) and w.values()[-1][1] == finals[0])
            seen = [[v for v in w.values() if v[1] is not None][-120:] for w in everyone]
    assert all(s == seen[0] for s in seen), "every client saw the same sequence"
    assert sorted((d["by"], d["n"]) for _, d in seen[0]) == [(k, i) for k in range(3) for i in range(40)]


def test_a_writer_hears_its_own_write_before_the_ack_while_other_nodes_write(cluster: Cluster) -> None:
    with _many([n.host for n in cluster.nodes] * 2, "own") as ws:
        for w in ws:
            assert w.request("q", {"p": "/race", "h": ""})["s"] == "ok"
        for k, w in enumerate(ws):
            for i in range(30):
                w.send("p", {"p": f"/race/w{k}-{i}", "d": i})
        for k, w in enumerate(ws):
            w.wait(lambda w=w: len(w.acks) >= 31)
            for i in range(30):
                ack_at = w.order.index(("ack", 2 + i))
                before = [e for kind, e in w.order[:ack_at] if kind == "push"]
                assert any(f"w{k}-{i}" in json.dumps(p["b"]) for p in before), (k, i)


def test_an_etag_precondition_is_decided_across_nodes(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    assert httpx.put(f"{n1.url}/doc.json?ns=etag", json={"v": 1}).status_code == 200
    got = httpx.get(f"{n1.url}/doc.json?ns=etag", headers={"X-Firebase-ETag": "true"})
    etag = got.headers["ETag"]
    first = httpx.put(f"{n2.url}/doc.json?ns=etag", json={"v": 2}, headers={"if-match": etag})
    assert first.status_code == 200, first.text
    stale = httpx.put(f"{n3.url}/doc.json?ns=etag", json={"v": 3}, headers={"if-match": etag})
    assert stale.status_code == 412, stale.text
    assert httpx.get(f"{n3.url}/doc.json?ns=etag").json() == {"v": 2}


class _many:
    """Context manager: one wire per host."""

    def __init__(self, hosts: list[str], ns: str) -> None:
        self.hosts, self.ns, self.stacks = hosts, ns, []

    def __enter__(self) -> list[Any]:
        out = []
        for host in self.hosts:
            cm = wires(host, 1, self.ns)
            out += cm.__enter__()
            self.stacks.append(cm)
        return out

    def __exit__(self, *exc: object) -> None:
        for cm in reversed(self.stacks):
            cm.__exit__(None, None, None)


def test_the_handshake_through_nginx_names_nginx(cluster: Cluster) -> None:
    assert cluster.nginx is not None
    with wires(cluster.nginx.host, 1, "hello") as (w,):
        assert w.hello["h"] == cluster.nginx.host


def test_a_rest_put_on_one_node_reaches_an_sse_stream_on_another(cluster: Cluster) -> None:
    n1, _, n3 = cluster.nodes
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    with httpx.Client(timeout=30) as client, client.stream(
            "GET", f"{n3.url}/feed.json?ns=sse", headers={"Accept": "text/event-stream"}) as response:
        def read() -> None:
            kind = None
            try:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind in ("put", "patch"):
                        events.put((kind, json.loads(line[6:])))
            except httpx.HTTPError:
                pass

        threading.Thread(target=read, daemon=True).start()
        assert events.get(timeout=10) == ("put", {"path": "/", "data": None})
        assert httpx.put(f"{n1.url}/feed/a.json?ns=sse", json={"from": "n1"}).status_code == 200
        assert events.get(timeout=10) == ("put", {"path": "/a", "data": {"from": "n1"}})


def test_rules_deployed_on_one_node_apply_on_another_within_a_second(cluster: Cluster) -> None:
    n1, n2, _ = cluster.nodes
    assert httpx.put(f"{n1.url}/open/x.json?ns=rules", json=1).status_code == 200  # n1 has it open
    rules = {"rules": {".read": True, "open": {".write": True}}}
    response = httpx.put(f"{n2.url}/.settings/rules.json?ns=rules", json=rules, headers=ADMIN)
    assert response.status_code == 200, response.text
    deployed = time.monotonic()
    wait_until(lambda: httpx.put(f"{n1.url}/closed.json?ns=rules", json=1).status_code == 401, 5,
               "n1 to refuse a write the new rules deny")
    assert time.monotonic() - deployed < 2.0
    assert httpx.put(f"{n1.url}/open/y.json?ns=rules", json=2).status_code == 200
    assert httpx.get(f"{n1.url}/.settings/rules.json?ns=rules", headers=ADMIN).json() == rules


def test_an_index_declared_on_one_node_serves_a_query_on_another(cluster: Cluster) -> None:
    n1, _, n3 = cluster.nodes
    scores = {"a": {"score": 30}, "b": {"score": 10}, "c": {"score": 20}}
    assert httpx.put(f"{n3.url}/items.json?ns=ix", json=scores).status_code == 200
    query = {"p": "/items", "h": "", "q": {"i": "score", "l": 2, "vf": "l"}}
    with wires(n3.host, 1, "ix") as (before,):
        assert before.request("q", query)["d"] == {"w": ["no_index"]}  # not indexed yet
    rules = {"rules": {".read": True, ".write": True, "items": {".indexOn": ["score"]}}}
    assert httpx.put(f"{n1.url}/.settings/rules.json?ns=ix", json=rules, headers=ADMIN).status_code == 200
    with wires(n3.host, 1, "ix") as (after,):
        wait_until(lambda: "w" not in (after.request("q", {**query, "p": "/items"}).get("d") or {}), 5,
                   "n3 to know the index")
        after.wait(lambda: bool(after.values()))
        assert after.values()[-1] == ("items", {"b": {"score": 10}, "c": {"score": 20}})
    got = httpx.get(f'{n3.url}/items.json?ns=ix&orderBy="score"&limitToFirst=2').json()
    assert got == {"b": {"score": 10}, "c": {"score": 20}}
    import psycopg

    with psycopg.connect(cluster.database_url) as conn:
        assert conn.execute("SELECT pattern, child FROM rtdb_index_defs d JOIN rtdb_namespaces n USING (ns_id) "
                            "WHERE n.name = 'ix'").fetchall() == [("items", "score")]


def test_hash_preconditioned_counters_from_three_nodes_sum_exactly(cluster: Cluster) -> None:
    per_node = 25
    done: list[int] = []

    def increment(host: str) -> None:
        with wires(host, 1, "tx") as (w,):
            retries = 0
            for _ in range(per_node):
                while True:
                    value = w.request("g", {"p": "/count", "q": {}})["d"]
                    h = node_hash(normalize(value, ()))
                    answer = w.request("p", {"p": "/count", "d": (value or 0) + 1, "h": h})
                    if answer["s"] == "ok":
                        break
                    assert answer["s"] == "datastale", answer
                    retries += 1
            done.append(retries)

    threads = [threading.Thread(target=increment, args=(n.host,)) for n in cluster.nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 3
    assert _final(cluster, "/count", "tx") == [3 * per_node] * 3


def test_a_namespace_dropped_on_one_node_is_gone_on_all_and_starts_anew(cluster: Cluster) -> None:
    n1, n2, n3 = cluster.nodes
    assert httpx.put(f"{n3.url}/a.json?ns=dropme", json={"x": 1}).status_code == 200
    with wires(n2.host, 1, "dropme") as (w,):
        assert w.request("q", {"p": "/a", "h": ""})["s"] == "ok"
        w.wait(lambda: ("a", {"x": 1}) in w.values())
        response = httpx.delete(f"{n1.url}/.namespace.json?ns=dropme", headers=ADMIN, timeout=30)
        assert response.status_code == 200, response.text
        w.wait(lambda: w.closed or ("a", None) in w.values())  # told, then disconnected to start over
    for node in cluster.nodes:
        assert httpx.get(f"{node.url}/a.json?ns=dropme").json() is None
    with wires(n2.host, 1, "dropme") as (again,):
        assert again.request("q", {"p": "/a", "h": ""})["s"] == "ok"
        assert httpx.put(f"{n3.url}/a.json?ns=dropme", json={"y": 2}).status_code == 200
        again.wait(lambda: ("a", {"y": 2}) in again.values())


def test_a_redis_url_without_a_database_url_is_refused_clearly(tmp_path: Path) -> None:
    from conftest import RTDB, free_port

    proc = subprocess.run([RTDB, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
                           "--redis-url", "redis://127.0.0.1:6379"], capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"--redis-url needs --database-url" in proc.stderr


def test_workers_of_a_node_are_nodes_of_the_cluster(tmp_path: Path) -> None:
    with fresh_url() as url, Cluster(tmp_path, database_url=url) as c:
        plain = c.add_node()
        pair = c.add_node("--workers", "2")
        names: set[str] = set()
        wait_until(lambda: names.add(c.health(pair)[1]["node"]) or len(names) == 2, 20, "both workers to answer")
        assert all(name.endswith(("-w0", "-w1")) for name in names), names
        with _many([pair.host] * 4 + [plain.host], "wk") as ws:
            for w in ws:
                assert w.request("q", {"p": "/v", "h": ""})["s"] == "ok"
            for i, w in enumerate(ws):
                assert w.request("p", {"p": f"/v/{i}", "d": i})["s"] == "ok"
            for w in ws:
                w.wait(lambda w=w: bool(w.values()) and any(p == "v/4" for p, _ in w.values()))
            seen = [w.values()[-5:] for w in ws]
        assert all(s == seen[0] for s in seen)


NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_official_js_sdk_on_three_nodes_and_nginx(cluster: Cluster) -> None:
    """tests/node/cluster.test.mjs: firebase@12 apps on each node and through nginx."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "firebase").is_dir():
        pytest.skip("node or tests/node/node_modules (npm ci) missing")
    assert cluster.nginx is not None
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(RTDB_PORT=str(cluster.nginx.port), RTDB_CLUSTER_PORTS=",".join(str(n.port) for n in cluster.nodes))
    proc = subprocess.run([node, "--test", "--test-reporter=spec", "cluster.test.mjs"], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}\n{cluster.logs()}"
    assert "skipped 0" in proc.stdout or "# skip 0" in proc.stdout, proc.stdout[-3000:]


def test_two_clusters_on_one_redis_do_not_hear_each_other(tmp_path: Path) -> None:
    redis_url = require_redis()
    with fresh_url() as url_a, fresh_url() as url_b, \
            Cluster(tmp_path, database_url=url_a, redis_url=redis_url, name="a") as a, \
            Cluster(tmp_path, database_url=url_b, redis_url=redis_url, name="b") as b:
        a.start(2)
        b.start(2)
        with wires(a.nodes[1].host, 1, "same") as (la,), wires(b.nodes[1].host, 1, "same") as (lb,), \
                wires(a.nodes[0].host, 1, "same") as (wa,), wires(b.nodes[0].host, 1, "same") as (wb,):
            for w in (la, lb):
                assert w.request("q", {"p": "/x", "h": ""})["s"] == "ok"
            for i in range(20):
                wa.send("p", {"p": "/x", "d": f"a{i}"})
                wb.send("p", {"p": "/x", "d": f"b{i}"})
            la.wait(lambda: bool(la.values()) and la.values()[-1][1] == "a19")
            lb.wait(lambda: bool(lb.values()) and lb.values()[-1][1] == "b19")
            assert [v for _, v in la.values() if v] == [f"a{i}" for i in range(20)]
            assert [v for _, v in lb.values() if v] == [f"b{i}" for i in range(20)]


def test_a_redis_restart_loses_no_change(tmp_path: Path) -> None:
    redis = PrivateRedis()
    redis.start()
    try:
        with fresh_url() as url, Cluster(tmp_path, database_url=url, redis_url=redis.url) as c:
            n1, n2 = c.start(2).nodes
            with wires(n2.host, 1, "r") as (listener,), wires(n1.host, 1, "r") as (writer,):
                assert listener.request("q", {"p": "/log", "h": ""})["s"] == "ok"
                sent = 0

                def write(count: int) -> None:
                    nonlocal sent
                    for _ in range(count):
                        assert writer.request("p", {"p": f"/log/{sent:04d}", "d": sent})["s"] == "ok"
                        sent += 1
                        time.sleep(0.01)

                write(30)
                redis.stop()
                wait_until(lambda: c.health(n2)[1].get("redis", {}).get("ok") is False, 10, "healthz to see Redis down")
                assert c.health(n2)[0] == 200 and c.health(n2)[1]["status"] == "degraded"
                write(40)  # delivered by the head poll meanwhile
                try:
                    listener.wait(lambda: any(p == f"log/{sent - 1:04d}" for p, _ in listener.values()), 10)
                except AssertionError:
                    print(c.logs(), c.health(n2))
                    raise
                redis.start()
                wait_until(lambda: c.health(n2)[1]["redis"]["ok"] and c.health(n1)[1]["redis"]["ok"], 15,
                           "the nodes to reconnect")
                write(30)
                listener.wait(lambda: any(p == f"log/{sent - 1:04d}" for p, _ in listener.values()), 10)
                got = [d for p, d in listener.values() if p.startswith("log/")]
                assert got == list(range(100)), "each change once, in order"
    finally:
        redis.close()


def test_postgresql_down_gives_unavailable_then_writes_resume_and_no_acked_write_is_lost(tmp_path: Path) -> None:
    pg = PrivatePostgres()
    pg.start()
    try:
        with Cluster(tmp_path, database_url=pg.url) as c:
            n1, n2 = c.start(2).nodes
            acked: dict[str, int] = {}
            for i in range(10):
                assert httpx.put(f"{n1.url}/w/k{i}.json?ns=pg", json=i).status_code == 200
                acked[f"k{i}"] = i
            with wires(n2.host, 1, "pg") as (w,):
                assert w.request("q", {"p": "/w", "h": ""})["s"] == "ok"
                pg.stop()
                response = httpx.put(f"{n1.url}/w/down.json?ns=pg", json=1, timeout=30)
                assert response.status_code == 503, response.text
                assert list(response.json()) == ["error"] and response.json()["error"]  # Firebase's error shape
                answer = w.request("p", {"p": "/w/down2", "d": 1}, timeout=30)
                assert answer["s"] == "unavailable", answer
                status, health = c.health(n1)
                assert status == 503 and health["postgresql"]["ok"] is False
                pg.start()

                def resumed() -> bool:
                    try:
                        return httpx.put(f"{n2.url}/w/back.json?ns=pg", json=2, timeout=10).status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_until(resumed, 30, "writes to succeed again")
                acked["back"] = 2
                wait_until(lambda: httpx.put(f"{n1.url}/w/k10.json?ns=pg", json=10).status_code == 200, 30,
                           "n1 to write again")
                acked["k10"] = 10
                w.wait(lambda: ("w/k10", 10) in w.values(), 15)
            for node in (n1, n2):
                got = httpx.get(f"{node.url}/w.json?ns=pg").json()
                assert {k: got.get(k) for k in acked} == acked
                assert "down" not in got and "down2" not in got
                assert c.health(node)[0] == 200
    finally:
        pg.close()
