"""Three rtdb nodes against one: writes per second on one new namespace and over 1, 4, 16
and 64 warm ones, cross-node write-to-event latency, fan-out to subscribers on every node, each
node's RSS and CPU; then, on a cluster of its own behind nginx with a Redis of its own,
recovery times: SIGKILL of a node -> its clients re-listened, -> their onDisconnect ops run
(ls= takeover and sweeper), and a Redis restart -> events on time again. Medians of
``--runs``; prints a Markdown table, asserts nothing.

Three `rtdb serve --database-url … --redis-url …` nodes share a fresh PostgreSQL schema (dropped
at the end) and Redis; the "one node" figures use the same cluster with every client on n1, so
both sides pay PostgreSQL alike. Everything — the 3 nodes, PostgreSQL, Redis and the Python
clients — shares this machine's CPUs (2 vCPUs here): the figures compare designs and track
regressions; they say nothing about capacity.

    .venv/bin/python bench/cluster_bench.py [--database-url postgresql://root@127.0.0.1/test]
        [--redis-url redis://127.0.0.1:6379] [--runs 3] [--writes 6000] [--clients 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from server_process import free_port, start_serve, wait_healthy
from websockets.asyncio.client import ClientConnection, connect

VALUE = {"name": "user", "score": 42, "active": True}


def spawn_node(port: int, i: int, database_url: str, redis_url: str, work: Path) -> subprocess.Popen[bytes]:
    return start_serve(port, work / f"n{i}", ["--emulator", "--database-url", database_url, "--redis-url", redis_url,
                                              "--node-id", f"n{i + 1}", "--log-level", "warning"])


def start_nodes(n: int, database_url: str, redis_url: str, work: Path) -> list[tuple[int, subprocess.Popen[bytes]]]:
    nodes = []
    for i in range(n):
        port = free_port()
        nodes.append((port, spawn_node(port, i, database_url, redis_url, work)))
    for port, proc in nodes:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=30)
    return nodes


async def client(port: int, ns: str) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/.ws?v=5&ns={ns}", max_size=None, max_queue=None)
    await ws.recv()  # the handshake
    return ws


def frame(r: int, action: str, body: dict[str, Any]) -> str:
    return json.dumps({"t": "d", "d": {"r": r, "a": action, "b": body}})


async def acks(ws: ClientConnection, count: int) -> None:
    """Read until ``count`` acks arrived (pushes are skipped)."""
    got = 0
    while got < count:
        message = await ws.recv()
        if '"r":' in message:
            got += 1


async def listen(ws: ClientConnection, path: str, r: int = 1) -> None:
    await ws.send(frame(r, "q", {"p": path, "h": ""}))
    while '"r":%d' % r not in (await ws.recv()):
        pass


# -- figures ---------------------------------------------------------------------------------
async def write_rate(ports: list[int], ns: str | list[str], writes: int) -> float:
    """Acked writes per second, pipelined: one connection per entry of ``ports`` (per namespace
    of ``ns``, when a list) sends its share of ``writes`` at once, then reads its acks."""
    names = [ns] if isinstance(ns, str) else ns
    conns = [await client(p, name) for name in names for p in ports]
    await asyncio.gather(*[c.send(frame(1, "p", {"p": "/warm", "d": i})) for i, c in enumerate(conns)])
    await asyncio.gather(*[acks(c, 1) for c in conns])
    share = writes // len(conns)

    refused: list[str] = []

    async def one(k: int, ws: ClientConnection) -> None:
        for i in range(share):
            await ws.send(frame(2 + i, "p", {"p": f"/items/c{k}-{i:06d}", "d": VALUE}))
        got = 0
        while got < share:
            message = await ws.recv()
            if '"r":' in message:
                got += 1
                if '"s":"ok"' not in message:
                    refused.append(str(message))

    t0 = time.perf_counter()
    await asyncio.gather(*[one(k, c) for k, c in enumerate(conns)])
    rate = share * len(conns) / (time.perf_counter() - t0)
    for c in conns:
        await c.close()
    if refused:  # e.g. PostgreSQL's max_connections, or a node's write pool busy past its timeout
        raise RuntimeError(f"{len(refused)} writes refused, e.g. {refused[0][:300]}")
    return rate


async def latency(writer_port: int, listener_ports: list[int], ns: str, rate: float, seconds: float
                  ) -> list[tuple[float, float]]:
    """Writes at ``rate`` per second on ``writer_port`` for ``seconds``; for each listener, the
    p50 and p99 (ms) from sending a write to the listener receiving its event."""
    writer = await client(writer_port, ns)
    listeners = [await client(p, ns) for p in listener_ports]
    for ws in listeners:
        await listen(ws, "/lat")
    sent: dict[int, float] = {}
    delays: list[list[float]] = [[] for _ in listeners]
    total = int(rate * seconds)

    async def read(k: int, ws: ClientConnection) -> None:
        while len(delays[k]) < total:
            message = json.loads(await ws.recv())
            body = message.get("d", {}).get("b", {})
            data = body.get("d") if isinstance(body, dict) else None
            if isinstance(data, dict) and "i" in data and data["i"] in sent:
                delays[k].append((time.perf_counter() - sent[data["i"]]) * 1000)

    async def drain() -> None:
        await acks(writer, total)

    readers = [asyncio.create_task(read(k, ws)) for k, ws in enumerate(listeners)]
    acker = asyncio.create_task(drain())
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        sent[i] = time.perf_counter()
        await writer.send(frame(10 + i, "p", {"p": "/lat", "d": {"i": i}}))
    try:
        await asyncio.wait_for(asyncio.gather(*readers, acker), 60)
    except TimeoutError:
        raise RuntimeError(f"events heard: {[len(d) for d in delays]} of {total}; acks done: {acker.done()}") from None
    for ws in [writer, *listeners]:
        await ws.close()
    return [(statistics.median(d), statistics.quantiles(d, n=100)[98]) for d in delays]


async def fanout(writer_port: int, listener_ports: list[int], per_node: int, ns: str, writes: int) -> float:
    """Events per second delivered to ``per_node`` subscribers on each node while one writer on
    ``writer_port`` writes ``writes`` times, pipelined (first send to last event)."""
    subs = [await client(p, ns) for p in listener_ports for _ in range(per_node)]
    for ws in subs:
        await listen(ws, "/fan")
    writer = await client(writer_port, ns)

    async def count(ws: ClientConnection) -> None:
        got = 0
        while got < writes:
            if '"a":"d"' in await ws.recv():
                got += 1

    counters = [asyncio.create_task(count(ws)) for ws in subs]
    t0 = time.perf_counter()
    for i in range(writes):
        await writer.send(frame(2 + i, "p", {"p": "/fan", "d": i}))
    await asyncio.wait_for(asyncio.gather(*counters, acks(writer, writes)), 120)
    rate = writes * len(subs) / (time.perf_counter() - t0)
    for ws in [writer, *subs]:
        await ws.close()
    return rate



def stop_all(procs: list[subprocess.Popen[Any]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- resources -------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(comm: str) -> float:
    """CPU seconds of every process named ``comm`` (all PostgreSQL backends, say)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == comm:
                total += cpu_s(int(proc.name))
        except OSError:
            continue
    return total


# -- recovery: nginx, a Redis of our own -----------------------------------------------------
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "cluster" / "nginx.conf"


def start_nginx(ports: list[int], run_dir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    run_dir.chmod(0o755)  # its workers run as nobody when the master is root
    servers = "\n        ".join(f"server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in ports)
    (run_dir / "nginx.conf").write_text(TEMPLATE.read_text().replace("__RUN_DIR__", str(run_dir))
                                        .replace("__LISTEN__", f"127.0.0.1:{port}").replace("__SERVERS__", servers))
    proc = subprocess.Popen([NGINX, "-p", str(run_dir), "-c", f"{run_dir}/nginx.conf", "-e", f"{run_dir}/error.log",
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return port, proc


def wait_listening(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.02)


def start_redis(port: int, work: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return proc


async def node_kill(lb_port: int, observer_port: int, victim: subprocess.Popen[bytes], ns: str, clients: int
                    ) -> tuple[float, float, float, int]:
    """``clients`` lean clients through nginx listen and register an onDisconnect set; the
    victim node is SIGKILLed. Its clients reconnect at once through nginx, half with ``ls=``
    (their old session is taken over), half without (a sweeper runs their ops after the lease).
    Seconds from the kill to: all of them re-listened; the taken-over ops run; the swept ops run
    (and how many clients the victim held)."""
    conns: list[tuple[int, ClientConnection, str]] = []
    for k in range(clients):
        ws = await connect(f"ws://127.0.0.1:{lb_port}/.ws?v=5&ns={ns}", max_size=None, max_queue=None)
        session = json.loads(await ws.recv())["d"]["d"]["s"]
        await listen(ws, "/p")
        await ws.send(frame(2, "o", {"p": f"/status/c{k}", "d": "offline"}))
        await acks(ws, 1)
        conns.append((k, ws, session))
    killed = time.perf_counter()
    victim.kill()
    victim.wait()

    async def back(k: int, ws: ClientConnection, session: str) -> tuple[int, float, ClientConnection] | None:
        """Reconnect through nginx as soon as the socket closes (``None``: it stayed up)."""
        try:
            await asyncio.wait_for(ws.recv(), 3)
            return None
        except TimeoutError:
            return None
        except Exception:  # noqa: BLE001 - the connection closed: its node died
            pass
        ls = f"&ls={session}" if k % 2 == 0 else ""
        new = await connect(f"ws://127.0.0.1:{lb_port}/.ws?v=5&ns={ns}{ls}", max_size=None, max_queue=None)
        await new.recv()
        await listen(new, "/p")
        return k, time.perf_counter(), new

    ran: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:  # from the kill on: when each client's onDisconnect set shows on n1
        async with httpx.AsyncClient() as http:
            while not done.is_set() and time.perf_counter() - killed < 40:
                status = (await http.get(f"http://127.0.0.1:{observer_port}/status.json?ns={ns}")).json() or {}
                now = time.perf_counter() - killed
                for name, value in status.items():
                    if value == "offline":
                        ran.setdefault(name, now)
                await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    returned = [x for x in await asyncio.gather(*[back(k, ws, session) for k, ws, session in conns]) if x]
    down = {k for k, _, _ in returned}
    relistened = max(t for _, t, _ in returned) - killed
    taken = {f"c{k}" for k in down if k % 2 == 0}
    swept = {f"c{k}" for k in down if k % 2 == 1}
    while not watcher.done() and not (taken | swept) <= ran.keys():
        await asyncio.sleep(0.05)
    done.set()
    await watcher
    for _, _, ws in returned:
        await ws.close()
    for _, ws, _ in conns:
        await ws.close()
    nan = float("nan")
    return (relistened, max((ran.get(n, nan) for n in taken), default=nan),
            max((ran.get(n, nan) for n in swept), default=nan), len(down))


async def redis_restart(writer_port: int, listener_port: int, redis: list[subprocess.Popen[bytes]], redis_port: int,
                        work: Path, ns: str, outage_s: float = 3.0) -> float:
    """Writes at 200/s on one node, a listener on another; Redis is down for ``outage_s``. Seconds
    from Redis listening again to the first of 20 consecutive events each heard within 30 ms."""
    writer = await client(writer_port, ns)
    listener = await client(listener_port, ns)
    await listen(listener, "/lag")
    sent: dict[int, float] = {}
    restarted: list[float] = []
    good: list[tuple[int, float]] = []
    recovered: list[float] = []

    async def read() -> None:
        while not recovered:
            message = json.loads(await listener.recv())
            data = message.get("d", {}).get("b", {})
            data = data.get("d") if isinstance(data, dict) else None
            if not (isinstance(data, dict) and "i" in data and data["i"] in sent):
                continue
            i = data["i"]
            if time.perf_counter() - sent[i] < 0.030 and restarted and sent[i] > restarted[0]:
                good.append((i, sent[i]))
                if len(good) >= 20 and good[-20][0] == i - 19:
                    recovered.append(good[-20][1] - restarted[0])
            else:
                good.clear()

    async def drain() -> None:
        while not recovered:
            await writer.recv()

    reader, drainer = asyncio.create_task(read()), asyncio.create_task(drain())
    start = time.perf_counter()
    i = 0
    stopped = False
    while not recovered and time.perf_counter() - start < 40:
        now = time.perf_counter() - start
        if now > 2 and not stopped:
            redis[0].kill()
            redis[0].wait()
            stopped = True
        if stopped and not restarted and now > 2 + outage_s:
            redis[0] = start_redis(redis_port, work)
            restarted.append(time.perf_counter())
        pause = start + i / 200 - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        sent[i] = time.perf_counter()
        await writer.send(frame(10 + i, "p", {"p": "/lag", "d": {"i": i}}))
        i += 1
    reader.cancel()
    drainer.cancel()
    await writer.close()
    await listener.close()
    return recovered[0] if recovered else float("nan")


# -- the run ---------------------------------------------------------------------------------
def median_of(runs: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return [asyncio.run(fn(r)) for r in range(runs)]


def fresh_schema(base_url: str, schemas: list[str]) -> str:
    schema = f"rtdb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(base_url, autocommit=True) as pg:
        pg.execute(f'CREATE SCHEMA "{schema}"')
    schemas.append(schema)
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def med(values: list[float], fmt: str = "{:,.0f}") -> str:
    known = [v for v in values if v == v]  # a run without such a client gives nan
    return fmt.format(statistics.median(known)) if known else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=6000)
    parser.add_argument("--per-node", type=int, default=10, help="fan-out subscribers per node")
    parser.add_argument("--clients", type=int, default=30, help="clients through nginx in the node kill")
    args = parser.parse_args()

    schemas: list[str] = []
    procs: list[subprocess.Popen[Any]] = []
    rows: list[tuple[str, str, str]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            nodes = start_nodes(3, fresh_schema(args.database_url, schemas), args.redis_url, work / "a")
            procs += [p for _, p in nodes]
            ports = [p for p, _ in nodes]
            n1, _, n3 = ports
            pids = [p.pid for _, p in nodes]
            cpu0 = [cpu_s(pid) for pid in pids], cpu_of("postgres"), cpu_of("redis-server"), time.perf_counter()

            spread, single = [], []
            for r in range(args.runs):  # interleaved A/B, each on a namespace of its own
                spread.append(asyncio.run(write_rate(ports, f"w3-{r}", args.writes)))
                single.append(asyncio.run(write_rate([n1, n1, n1], f"w1-{r}", args.writes)))
            rows.append(("writes/s, one new namespace (its first writes), 3 pipelined connections", med(single),
                         med(spread)))
            # namespaces written before ("warm"; new paths each time): their groups share each
            # node's pool of PostgreSQL write connections, however many are open
            names = [f"k{j}" for j in range(64)]
            asyncio.run(write_rate(ports, names, args.writes))
            for k in (1, 4, 16, 64):
                spread, single = [], []
                for _ in range(args.runs):
                    spread.append(asyncio.run(write_rate(ports, names[:k], args.writes)))
                    single.append(asyncio.run(write_rate([n1, n1, n1], names[:k], args.writes)))
                rows.append((f"writes/s, {k} warm namespace{'s' if k > 1 else ''} together, 3 pipelined "
                             "connections each", med(single), med(spread)))

            lat = median_of(args.runs, lambda r: latency(n1, [n1, n3], "lat", 200.0, 5.0))
            same = [x[0] for x in lat]
            cross = [x[1] for x in lat]
            rows.append(("write→event p50 at 200 writes/s (ms)", med([s[0] for s in same], "{:.2f}"),
                         med([c[0] for c in cross], "{:.2f}")))
            rows.append(("write→event p99 at 200 writes/s (ms)", med([s[1] for s in same], "{:.2f}"),
                         med([c[1] for c in cross], "{:.2f}")))

            fan_writes = max(200, args.writes // 12)
            fan1, fan3 = [], []
            for _ in range(args.runs):
                fan1.append(asyncio.run(fanout(n1, [n1], 3 * args.per_node, "f", fan_writes)))
                fan3.append(asyncio.run(fanout(n1, ports, args.per_node, "f", fan_writes)))
            rows.append((f"fan-out events/s, {3 * args.per_node} subscribers, writer on n1", med(fan1), med(fan3)))

            spent = time.perf_counter() - cpu0[3]
            rows.append(("node RSS at the end of the figures above (MiB), n1 / n2 / n3", "—",
                         " / ".join(f"{rss_mib(pid):.0f}" for pid in pids)))
            rows.append((f"node CPU s over the figures above ({spent:.0f} s of wall time), n1 / n2 / n3", "—",
                         " / ".join(f"{cpu_s(pid) - c:.1f}" for pid, c in zip(pids, cpu0[0]))))
            rows.append(("PostgreSQL / Redis CPU s meanwhile (all their processes on the machine)", "—",
                         f"{cpu_of('postgres') - cpu0[1]:.1f} / {cpu_of('redis-server') - cpu0[2]:.1f}"))
            stop_all(procs)
            procs.clear()

            # recovery: a cluster of its own behind nginx, on a Redis of its own
            redis_port = free_port()
            (work / "redis").mkdir()
            redis = [start_redis(redis_port, work / "redis")]
            url = fresh_schema(args.database_url, schemas)
            nodes = start_nodes(3, url, f"redis://127.0.0.1:{redis_port}", work / "b")
            (work / "nginx").mkdir()
            lb_port, nginx = start_nginx([p for p, _ in nodes], work / "nginx")
            kills: list[tuple[float, float, float, int]] = []
            lags: list[float] = []
            try:
                for r in range(args.runs):
                    kills.append(asyncio.run(node_kill(lb_port, nodes[0][0], nodes[2][1], f"kill-{r}", args.clients)))
                    port = nodes[2][0]
                    nodes[2] = (port, spawn_node(port, 2, url, f"redis://127.0.0.1:{redis_port}", work / "b"))
                    wait_healthy(f"http://127.0.0.1:{port}", nodes[2][1], timeout=30)
                    time.sleep(6)  # nginx leaves a failed server out for fail_timeout (5 s)
                    lags.append(asyncio.run(redis_restart(nodes[0][0], nodes[1][0], redis, redis_port,
                                                          work / "redis", f"lag-{r}")))
            finally:
                stop_all([nginx, *(p for _, p in nodes), *redis])
            held = ", ".join(str(k[3]) for k in kills)
            rows.append((f"SIGKILL n3 → its clients re-listened through nginx (s; it held {held} of {args.clients})",
                         "—", med([k[0] for k in kills], "{:.2f}")))
            rows.append(("SIGKILL n3 → onDisconnect ops run, clients back with ls= (takeover) (s)", "—",
                         med([k[1] for k in kills], "{:.2f}")))
            rows.append(("SIGKILL n3 → onDisconnect ops run, clients back without ls= (sweeper, 10 s lease) (s)", "—",
                         med([k[2] for k in kills], "{:.2f}")))
            rows.append(("Redis down 3 s, restarted → events on time again (< 30 ms, 20 in a row) (s)", "—",
                         med(lags, "{:.2f}")))
    finally:
        stop_all(procs)
        with psycopg.connect(args.database_url, autocommit=True) as pg:
            for schema in schemas:
                pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    print(f"\n{os.cpu_count()} vCPUs ({cpu}) shared by 3 rtdb nodes, nginx, PostgreSQL, Redis and the Python "
          f"clients; medians of {args.runs} runs. The figures compare designs and track regressions; they say "
          "nothing about capacity.\n")
    print("| figure | one node (all clients on n1) | three nodes (clients spread) |")
    print("|---|---|---|")
    for name, one, three in rows:
        print(f"| {name} | {one} | {three} |")
    print("\nLatency: one writer on n1; the same writes heard by a listener on n1 (left) and on n3 (right, "
          "through Redis). Fan-out: the subscribers all on n1 (left) or spread over n1..n3 (right). "
          "Recovery: lean clients (no backoff) through nginx, reconnecting as soon as their socket closes.")


if __name__ == "__main__":
    main()
