"""One large REST write against a real `rtdb serve` subprocess: the server's peak memory
above its resting size while it takes the write (as a multiple of the body's size), and
what another client sees meanwhile (the slowest of its small GETs, one after another on
a keep-alive connection). Prints medians over runs; asserts nothing.

    .venv/bin/python bench/large_write_bench.py [--children 300000] [--runs 3] [--listen]
        [--server-arg=--write-process]

``--listen``: a WebSocket client listens at the written path, so the write is also pushed.

Peak memory is the kernel's high-water mark of the server process (``VmHWM`` in
``/proc/PID/status``), reset before each write through ``/proc/PID/clear_refs``, above
its resident size just before. Each run starts a fresh server: its first large write
also fills what stays afterwards (SQLite's page cache of the writer connection, up to
16 MB, and memory the allocator keeps for reuse), printed as "after it".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from rest_bench import RawClient, Server
from websockets.sync.client import ClientConnection, connect


def body_of(children: int) -> bytes:
    """A flat object of ``children`` short string leaves, about 35 bytes each."""
    parts = [f'"k{i:07d}":"value {i:07d} abcdefghij"' for i in range(children)]
    return ("{" + ",".join(parts) + "}").encode()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Prober(threading.Thread):
    """Small GETs back to back on one connection; keeps each one's latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = RawClient(port)
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.perf_counter()
            status, _ = self.client.request("GET", "/probe.json")
            self.latencies.append(time.perf_counter() - t)
            assert status == 200


def listen(server: Server, target: str) -> tuple[ClientConnection, threading.Event]:
    """A WebSocket client listening at ``target``; the event is set once the write's push arrived."""
    ws = connect(f"ws://127.0.0.1:{server.port}/.ws?v=5&ns=default", max_size=None)
    ws.recv()
    ws.send(json.dumps({"t": "d", "d": {"r": 1, "a": "q", "b": {"p": "/" + target, "h": ""}}}))
    while json.loads(ws.recv()).get("d", {}).get("r") != 1:
        pass
    pushed = threading.Event()

    def read() -> None:
        ws.recv()  # the push of the write (its first frame); the rest is read and dropped
        pushed.set()
        try:
            while True:
                ws.recv()
        except Exception:  # closed at the end
            pass

    threading.Thread(target=read, daemon=True).start()
    return ws, pushed


def one_write(server: Server, body: bytes, target: str,
              pushed: threading.Event | None = None) -> tuple[float, float, float, float, float]:
    """(peak MB above rest, MB above rest after it, write seconds, slowest probe s, median probe s)."""
    assert server.proc is not None
    pid = server.proc.pid
    rest_kb = status_kb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    prober = Prober(server.port)
    prober.start()
    while len(prober.latencies) < 50:  # the prober is running before the write starts
        time.sleep(0.01)
    before = len(prober.latencies)
    writer = RawClient(server.port)
    t = time.perf_counter()
    status, _ = writer.request("PUT", f"/{target}.json", body)
    took = time.perf_counter() - t
    if pushed is not None:
        pushed.wait(60)
        time.sleep(0.5)  # the rest of the push is on its way
    during = prober.latencies[before:]
    prober.stop.set()
    prober.join()
    writer.close()
    prober.client.close()
    assert status in (200, 204), status
    peak_kb, after_kb = status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS")
    return ((peak_kb - rest_kb) / 1024, (after_kb - rest_kb) / 1024, took, max(during, default=took),
            statistics.median(during or [0.0]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--listen", action="store_true")
    args = parser.parse_args()
    body = body_of(args.children)
    size_mb = len(body) / 2**20
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"body: {args.children:,} children, {size_mb:.1f} MB")
    results = []
    for run in range(args.runs):  # a fresh server each time: a write leaves freed memory behind to reuse
        with tempfile.TemporaryDirectory() as tmp, Server(tmp, *args.server_arg) as server:
            warm = RawClient(server.port)
            warm.request("PUT", "/probe.json", b'{"a":1}')
            warm.close()
            ws, pushed = listen(server, "big") if args.listen else (None, None)
            peak, after, took, worst, median = one_write(server, body, "big", pushed)
            if ws is not None:
                ws.close()
            results.append((peak, after, took, worst))
            print(f"run {run + 1}: peak +{peak:.0f} MB ({peak / size_mb:.1f}x body), +{after:.0f} MB after it, "
                  f"write {took:.2f} s, other client's slowest GET {worst * 1000:.0f} ms "
                  f"(median {median * 1000:.1f} ms)")
    peaks, afters, tooks, worsts = zip(*results)
    peak = statistics.median(peaks)
    print(f"median of {args.runs}: peak +{peak:.0f} MB ({peak / size_mb:.1f}x the body), "
          f"+{statistics.median(afters):.0f} MB resident after it, write {statistics.median(tooks):.2f} s, "
          f"slowest GET of another client {statistics.median(worsts) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
