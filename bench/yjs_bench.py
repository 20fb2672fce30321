"""Yjs documents (issue 16): updates/s one document absorbs from 10 typing clients, keystroke-to-peer
latency at 50 updates/s, load time of a document of N edits, storage per edit after compaction.

    .venv/bin/python bench/yjs_bench.py [--edits 100000]

Starts its own ``rtdb serve --emulator`` (synchronous FULL, one process) on a free port; the
clients are pycrdt documents through ``rtdb_sdk.open_doc`` in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from pycrdt import Doc, Text
from server_process import free_port, start_serve, wait_healthy

from rtdb_sdk import open_doc


async def wait_text(text: Text, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(text) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(text)} of {n}")
        await asyncio.sleep(0.005)


async def throughput(url: str, clients: int, per_client: int) -> float:
    async with open_doc(url, "bench/throughput") as observer, contextlib.AsyncExitStack() as stack:
        await observer.synced()
        sessions = [await stack.enter_async_context(open_doc(url, "bench/throughput")) for _ in range(clients)]
        for s in sessions:
            await s.synced()
        t0 = time.perf_counter()

        async def type_(s: object) -> None:
            text = s.doc.get("content", type=Text)  # type: ignore[attr-defined]
            for i in range(per_client):
                text.insert(len(text), "x")
                if i % 20 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(type_(s) for s in sessions))
        await wait_text(observer.doc.get("content", type=Text), clients * per_client)
        elapsed = time.perf_counter() - t0
    return clients * per_client / elapsed


async def latency(url: str, rate: float, count: int) -> tuple[float, float]:
    async with open_doc(url, "bench/latency") as a, open_doc(url, "bench/latency") as b:
        await a.synced()
        await b.synced()
        ta, tb = a.doc.get("content", type=Text), b.doc.get("content", type=Text)
        samples = []
        for i in range(count):
            t0 = time.perf_counter()
            ta.insert(len(ta), "k")
            while len(tb) < i + 1:
                await asyncio.sleep(0.0002)
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def load(url: str, edits: int) -> tuple[float, int]:
    async with open_doc(url, "bench/big") as w:
        await w.synced()
        text = w.doc.get("content", type=Text)
        for i in range(edits):
            text.insert(len(text), "abcdefghij"[i % 10])
            if i % 200 == 0:
                await asyncio.sleep(0)
        probe = Doc()
        async with open_doc(url, "bench/big", doc=probe) as p:
            await wait_text(p.doc.get("content", type=Text), edits, timeout=600)
    t0 = time.perf_counter()
    async with open_doc(url, "bench/big") as r:
        await r.synced()
        assert len(r.doc.get("content", type=Text)) == edits
    return time.perf_counter() - t0, edits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    data = Path(tempfile.mkdtemp())
    proc = start_serve(port, data, ["--emulator", "--log-level", "warning"], out=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        url = f"http://127.0.0.1:{port}?ns=bench"
        ups = asyncio.run(throughput(url, 10, 1000))
        print(f"throughput: {ups:,.0f} updates/s absorbed from 10 typing clients (10 x 1000)")
        p50, p99 = asyncio.run(latency(url, 50, 500))
        print(f"latency at 50 updates/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms (500 keystrokes)")
        before = os.path.getsize(data / "bench.sqlite")
        seconds, n = asyncio.run(load(url, args.edits))
        print(f"load: a document of {n:,} edits synced to a new client in {seconds * 1000:.0f} ms")
        rows = httpx.get(f"http://127.0.0.1:{port}/.json?ns=bench&shallow=true").status_code
        subprocess.run(["sqlite3", str(data / "bench.sqlite"), "PRAGMA wal_checkpoint(TRUNCATE)"],
                       capture_output=True, check=False)
        import sqlite3

        with sqlite3.connect(data / "bench.sqlite") as db:
            stored = db.execute("SELECT count(*), sum(length(data)) FROM ydoc WHERE path = 'bench/big'").fetchone()
        print(f"storage: {stored[1] / n:.2f} bytes of ydoc rows per edit ({stored[0]} rows after compaction; "
              f"file {before:,} B before the big document) [{rows}]")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
