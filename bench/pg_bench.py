"""Writes per second on one namespace, SQLite against PostgreSQL in the same run: through the
engine (concurrent writers, group commit), and through a real `rtdb serve` over one WebSocket
(sequential: each write awaits its ack; pipelined: all sent, then the acks). Medians of
``--runs``, the backends interleaved run by run; prints a Markdown table, asserts nothing.
PostgreSQL work happens in a schema of its own, dropped at the end.

    .venv/bin/python bench/pg_bench.py [--database-url postgresql://root@127.0.0.1/test] [--runs 3]
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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
from server_process import RTDB
from websockets.sync.client import connect

from rtdb.core.auth import ADMIN
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine

VALUE = {"name": "user", "score": 42, "active": True}


def engine_rate(data_dir: Path, database_url: str | None, writes: int, writers: int) -> float:
    async def run() -> float:
        engine = Engine(data_dir, access=RulesAccess(default_rules(emulator=False)), database_url=database_url)
        try:
            await engine.set("bench", ("warm",), 1, caller=ADMIN)
            t0 = time.perf_counter()

            async def writer(w: int) -> None:
                for i in range(w, writes, writers):
                    await engine.set("bench", ("items", f"k{i:07d}"), VALUE, caller=ADMIN)

            await asyncio.gather(*[writer(w) for w in range(writers)])
            return writes / (time.perf_counter() - t0)
        finally:
            await engine.close()

    return asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ws_rates(data_dir: Path, database_url: str | None, sequential: int, pipelined: int) -> tuple[float, float]:
    port = _free_port()
    args = [RTDB, "serve", "--emulator", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
    if database_url:
        args += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with connect(f"ws://127.0.0.1:{port}/.ws?v=5&ns=bench", open_timeout=10, max_size=None) as ws:
            ws.recv(timeout=10)
            r = 0

            def send(path: str) -> None:
                nonlocal r
                r += 1
                ws.send(json.dumps({"t": "d", "d": {"r": r, "a": "p", "b": {"p": path, "d": VALUE}}}))

            def acks(n: int) -> None:
                got = 0
                while got < n:
                    msg = json.loads(ws.recv(timeout=60))
                    if msg.get("t") == "d" and "r" in msg["d"]:
                        assert msg["d"]["b"]["s"] == "ok", msg
                        got += 1

            send("/warm")
            acks(1)
            t0 = time.perf_counter()
            for i in range(sequential):
                send(f"/seq/k{i:07d}")
                acks(1)
            seq_rate = sequential / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i in range(pipelined):
                send(f"/pipe/k{i:07d}")
            acks(pipelined)
            pipe_rate = pipelined / (time.perf_counter() - t0)
        return seq_rate, pipe_rate
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("RTDB_BENCH_DATABASE_URL",
                                                                  "postgresql://root@127.0.0.1:5432/test"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine-writes", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=1_000)
    parser.add_argument("--pipelined", type=int, default=10_000)
    args = parser.parse_args()

    figures: dict[tuple[str, str], list[float]] = {}

    def note(backend: str, what: str, value: float) -> None:
        figures.setdefault((backend, what), []).append(value)
        print(f"  {backend:10s} {what:28s} {value:10,.0f} writes/s", flush=True)

    with psycopg.connect(args.database_url, autocommit=True) as admin:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", flush=True)
            for backend in ("sqlite", "postgresql"):
                schema = f"rtdb_bench_{secrets.token_hex(4)}"
                url = None
                if backend == "postgresql":
                    admin.execute(f'CREATE SCHEMA "{schema}"')
                    sep = "&" if "?" in args.database_url else "?"
                    url = f"{args.database_url}{sep}options={quote(f'-csearch_path={schema}')}"
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        note(backend, "engine, concurrent writers", engine_rate(
                            Path(tmp) / "engine", url, args.engine_writes, args.writers))
                    if url is not None:  # the WebSocket run starts from an empty schema too
                        admin.execute(f'DROP SCHEMA "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
                    with tempfile.TemporaryDirectory() as tmp:
                        seq, pipe = ws_rates(Path(tmp) / "serve", url, args.sequential, args.pipelined)
                        note(backend, "WebSocket, sequential", seq)
                        note(backend, "WebSocket, pipelined", pipe)
                finally:
                    if url is not None:
                        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    median: Callable[[str, str], float] = lambda b, w: statistics.median(figures[(b, w)])  # noqa: E731
    print()
    print(f"| writes/s, one namespace (median of {args.runs}) | SQLite | PostgreSQL | PostgreSQL / SQLite |")
    print("|---|---|---|---|")
    for what in ("engine, concurrent writers", "WebSocket, sequential", "WebSocket, pipelined"):
        s, p = median("sqlite", what), median("postgresql", what)
        print(f"| {what} | {s:,.0f} | {p:,.0f} | {p / s:.2f} |")


if __name__ == "__main__":
    main()
