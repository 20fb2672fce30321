"""Three rtdb nodes against one: writes per second on one namespace, cross-node write-to-event
latency, and fan-out to subscribers on every node. Medians of ``--runs``; prints a Markdown
table, asserts nothing.

Three `rtdb serve --database-url … --redis-url …` nodes share a fresh PostgreSQL schema (dropped
at the end) and Redis; the "one node" figures use the same cluster with every client on n1, so
both sides pay PostgreSQL alike. Everything — the 3 nodes, PostgreSQL, Redis and the Python
clients — shares this machine's CPUs (2 vCPUs here): the figures compare designs and track
regressions; they say nothing about capacity.

    .venv/bin/python bench/cluster_bench.py [--database-url postgresql://root@127.0.0.1/test]
        [--redis-url redis://127.0.0.1:6379] [--runs 3] [--writes 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
from websockets.asyncio.client import ClientConnection, connect

RTDB = str(Path(sys.executable).with_name("rtdb"))
VALUE = {"name": "user", "score": 42, "active": True}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nodes(n: int, database_url: str, redis_url: str, work: Path) -> list[tuple[int, subprocess.Popen[bytes]]]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    nodes = []
    for i in range(n):
        port = _free_port()
        proc = subprocess.Popen([RTDB, "serve", "--emulator", "--port", str(port), "--data-dir", str(work / f"n{i}"),
                                 "--database-url", database_url, "--redis-url", redis_url, "--node-id", f"n{i + 1}",
                                 "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        nodes.append((port, proc))
    for port, _ in nodes:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"node on {port} did not start")
            time.sleep(0.05)
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
async def write_rate(ports: list[int], ns: str, writes: int) -> float:
    """Acked writes per second, pipelined: one connection per entry of ``ports`` sends its share
    of ``writes`` at once, then reads its acks."""
    conns = [await client(p, ns) for p in ports]
    await asyncio.gather(*[c.send(frame(1, "p", {"p": "/warm", "d": i})) for i, c in enumerate(conns)])
    await asyncio.gather(*[acks(c, 1) for c in conns])
    share = writes // len(conns)

    async def one(k: int, ws: ClientConnection) -> None:
        for i in range(share):
            await ws.send(frame(2 + i, "p", {"p": f"/items/c{k}-{i:06d}", "d": VALUE}))
        await acks(ws, share)

    t0 = time.perf_counter()
    await asyncio.gather(*[one(k, c) for k, c in enumerate(conns)])
    rate = share * len(conns) / (time.perf_counter() - t0)
    for c in conns:
        await c.close()
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
    await asyncio.wait_for(asyncio.gather(*readers, acker), 60)
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


# -- the run ---------------------------------------------------------------------------------
def median_of(runs: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    return [asyncio.run(fn(r)) for r in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--per-node", type=int, default=10, help="fan-out subscribers per node")
    args = parser.parse_args()

    schema = f"rtdb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.database_url, autocommit=True) as pg:
        pg.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.database_url else "?"
    url = f"{args.database_url}{sep}options={quote(f'-csearch_path={schema}')}"
    nodes: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        with tempfile.TemporaryDirectory() as work:
            nodes = start_nodes(3, url, args.redis_url, Path(work))
            ports = [p for p, _ in nodes]
            n1, _, n3 = ports
            rows: list[tuple[str, str, str]] = []

            spread, single = [], []
            for r in range(args.runs):  # interleaved A/B
                spread.append(asyncio.run(write_rate(ports, f"w3-{r}", args.writes)))
                single.append(asyncio.run(write_rate([n1, n1, n1], f"w1-{r}", args.writes)))
            rows.append(("writes/s, one namespace, 3 pipelined connections",
                         f"{statistics.median(single):,.0f}", f"{statistics.median(spread):,.0f}"))

            lat = median_of(args.runs, lambda r: latency(n1, [n1, n3], f"lat-{r}", 200.0, 5.0))
            same = [x[0] for x in lat]
            cross = [x[1] for x in lat]
            rows.append(("write→event p50 at 200 writes/s (ms)", f"{statistics.median(s[0] for s in same):.2f}",
                         f"{statistics.median(c[0] for c in cross):.2f}"))
            rows.append(("write→event p99 at 200 writes/s (ms)", f"{statistics.median(s[1] for s in same):.2f}",
                         f"{statistics.median(c[1] for c in cross):.2f}"))

            fan_writes = max(200, args.writes // 6)
            fan1, fan3 = [], []
            for r in range(args.runs):
                fan1.append(asyncio.run(fanout(n1, [n1], 3 * args.per_node, f"f1-{r}", fan_writes)))
                fan3.append(asyncio.run(fanout(n1, ports, args.per_node, f"f3-{r}", fan_writes)))
            rows.append((f"fan-out events/s, {3 * args.per_node} subscribers, writer on n1",
                         f"{statistics.median(fan1):,.0f}", f"{statistics.median(fan3):,.0f}"))
    finally:
        for _, proc in nodes:
            proc.terminate()
        for _, proc in nodes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(args.database_url, autocommit=True) as pg:
            pg.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    print(f"\n{os.cpu_count()} vCPUs shared by 3 rtdb nodes, PostgreSQL, Redis and the Python clients; "
          f"medians of {args.runs} runs.\n")
    print("| figure | one node (all clients on n1) | three nodes (clients spread) |")
    print("|---|---|---|")
    for name, one, three in rows:
        print(f"| {name} | {one} | {three} |")
    print("\nLatency: one writer on n1; the same writes heard by a listener on n1 (left) and on n3 (right, "
          "through Redis). Fan-out: the subscribers all on n1 (left) or spread over n1..n3 (right).")


if __name__ == "__main__":
    main()
