"""REST figures against a real `rtdb serve` subprocess: sequential PUTs on one keep-alive
connection, GET latency of a small node, cold reads of a 100k-leaf subtree and of one
100-leaf child, and server memory with a 1M-leaf database. Prints figures; asserts nothing.

    .venv/bin/python bench/rest_bench.py [--puts 5000] [--gets 2000] [--big-leaves 1000000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from server_process import free_port, start_serve, stop, wait_healthy


class Server:
    def __init__(self, data_dir: str, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.proc = start_serve(self.port, self.data_dir, ["--emulator", "--log-level", "warning", *self.extra])
        wait_healthy(self.url, self.proc)
        return self

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, timeout=20)


def ms(values: list[float]) -> str:
    p99 = sorted(values)[int(len(values) * 0.99) - 1]
    return f"median {statistics.median(values) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


class RawClient:
    """A minimal keep-alive HTTP/1.1 client on one socket, so that the client's own
    cost (httpx spends ~0.5 ms per request) does not hide the server's."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n" + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        header, self.buf = self.buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        payload, self.buf = self.buf[:length], self.buf[length:]
        return int(header.split(b" ", 2)[1]), payload

    def close(self) -> None:
        self.sock.close()


def bench_puts_and_gets(port: int, puts: int, gets: int) -> None:
    client = RawClient(port)
    body = b'{"i":1,"name":"item-1","ok":true,"ts":1764300000000}'
    for i in range(200):
        client.request("PUT", f"/warm/k{i}.json", body)
    rates = []
    for rnd in range(3):
        t0 = time.perf_counter()
        for i in range(puts):
            status, _ = client.request("PUT", f"/items/r{rnd}k{i:06d}.json", body)
            assert status == 200
        rates.append(puts / (time.perf_counter() - t0))
    print(f"REST PUT sequential, one keep-alive connection: median {statistics.median(rates):,.0f}/s "
          f"(3 runs of {puts}: {', '.join(f'{r:,.0f}' for r in rates)})")
    times = []
    for i in range(gets):
        t = time.perf_counter()
        status, _ = client.request("GET", f"/items/r0k{i % puts:06d}.json")
        times.append(time.perf_counter() - t)
    print(f"REST GET one small node: {ms(times)} ({gets} GETs, round trip measured by the client)")
    client.close()


def bench_big_tree(url: str) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        child = {f"f{j:03d}": f"value {j}" for j in range(100)}
        for i in range(0, 1000, 100):
            client.patch("/big.json?print=silent", json={f"c{k:04d}": child for k in range(i, i + 100)})
    cold = []
    one = []
    for _ in range(3):
        with httpx.Client(base_url=url, timeout=120) as client:
            t = time.perf_counter()
            r = client.get("/big.json")
            cold.append(time.perf_counter() - t)
            assert len(r.json()) == 1000
            t = time.perf_counter()
            r = client.get("/big/c0500.json")
            one.append(time.perf_counter() - t)
            assert len(r.json()) == 100
    print(f"REST GET 100k-leaf subtree (1,000 x 100): median {statistics.median(cold) * 1000:.0f} ms of 3; "
          f"one 100-leaf child: median {statistics.median(one) * 1000:.2f} ms")


def fill_million(data_dir: str, leaves: int) -> None:
    """Write the big database through the engine (fast path, no HTTP)."""
    import asyncio

    from rtdb.core.auth import ADMIN
    from rtdb.engine.access import RulesAccess, default_rules
    from rtdb.engine.engine import Engine

    async def go() -> None:
        engine = Engine(Path(data_dir), access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL")
        per_child = 100
        batch = 100
        for start in range(0, leaves // per_child, batch):
            await engine.update("default", ("huge",), {
                f"u{k:06d}": {f"f{j:02d}": k * per_child + j for j in range(per_child)}
                for k in range(start, start + batch)
            }, caller=ADMIN)
        await engine.close()

    asyncio.run(go())


def bench_memory(leaves: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        fill_million(tmp, leaves)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        print(f"{leaves:,}-leaf database written in {time.perf_counter() - t:.0f} s ({size:.0f} MB on disk)")
        with Server(tmp) as server, httpx.Client(base_url=server.url, timeout=300) as client:
            idle = server.rss_mb()
            client.get("/huge.json?shallow=true")
            for k in range(0, leaves // 100, max(1, leaves // 100 // 200)):
                client.get(f"/huge/u{k:06d}.json")
            client.get('/huge.json?orderBy="$key"&limitToLast=5')
            print(f"server RSS with it: {idle:.0f} MB at start, {server.rss_mb():.0f} MB after shallow + 200 "
                  f"child reads + a key query")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--puts", type=int, default=5000)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--big-leaves", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp, Server(tmp) as server:
        print("-- synchronous=full (default)")
        bench_puts_and_gets(server.port, args.puts, args.gets)
        bench_big_tree(server.url)
    with tempfile.TemporaryDirectory() as tmp, Server(tmp, "--synchronous", "normal") as server:
        print("-- synchronous=normal")
        bench_puts_and_gets(server.port, args.puts, args.gets)
    if args.big_leaves:
        bench_memory(args.big_leaves)


if __name__ == "__main__":
    main()
