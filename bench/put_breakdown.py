"""Where the time of one sequential REST PUT goes (issue 12's lone-write target).

Measures, on one keep-alive connection with the raw-socket client of
``storage_bench.py``, the round trip of requests that do successively more of a PUT's
work, against a real ``rtdb serve`` (and firebase-server in the same run):

* ``GET`` of a small leaf: the HTTP round trip, the client, request handling, rules,
  one read transaction;
* ``PUT`` with ``--synchronous normal``: all of a write but the fsync (WAL mode syncs
  only at checkpoints);
* ``PUT`` with ``--synchronous full`` (the default): the same plus the fsync of the WAL;
* the raw cost of one SQLite commit with ``synchronous=FULL`` on the same disk.

The differences say what each part costs. Medians of ``--runs`` runs; prints a
Markdown table; asserts nothing::

    .venv/bin/python bench/put_breakdown.py --peer firebase-server --runs 3
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storage_bench import NS, PEERS_DIR, HttpConn, Server, Systems, free_port, serving  # noqa: E402

BODY = b'{"i":1,"name":"item-1","ok":true,"ts":1764300000000}'


def round_trip_us(server: Server, method: str, n: int) -> float:
    """Median microseconds per request over ``n`` sequential requests (after a warm-up)."""
    conn = HttpConn(server.port)
    try:
        status, _ = conn.request("PUT", f"/leaf.json?ns={NS}", BODY)
        assert status == 200, status
        for i in range(200):
            conn.request(method, f"/warm/k{i % 50}.json?ns={NS}", BODY if method == "PUT" else b"")
        times = []
        for i in range(n):
            path = f"/items/s{i:06d}.json?ns={NS}" if method == "PUT" else f"/leaf.json?ns={NS}"
            t = time.perf_counter()
            status, _ = conn.request(method, path, BODY if method == "PUT" else b"")
            times.append(time.perf_counter() - t)
            assert status == 200, status
        return statistics.median(times) * 1e6
    finally:
        conn.close()


def commit_us(n: int) -> float:
    """Median microseconds of one small SQLite commit (WAL, synchronous=FULL) on this disk."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as d:
        conn = sqlite3.connect(Path(d) / "c.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
        times = []
        for i in range(n):
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", (i % 100, BODY))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - t)
        conn.close()
        return statistics.median(times) * 1e6


def rtdb(sys_: Systems, synchronous: str, run: int) -> Server:
    port = free_port()
    cmd = [str(sys_.rtdb), "serve", "--emulator", "--port", str(port), "--data-dir",
           str(sys_.tmp / f"{synchronous}-{run}"), "--synchronous", synchronous, "--log-level", "warning"]
    return serving(f"rtdb ({synchronous})", cmd, port, sys_.tmp / "rtdb.log")  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtdb", type=Path, default=Path(sys.executable).parent / "rtdb")
    ap.add_argument("--peer", choices=["firebase-server"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-n", type=int, default=3000, help="requests per figure")
    args = ap.parse_args()
    peer = args.peer is not None and (PEERS_DIR / "node_modules" / "firebase-server" / "package.json").exists()
    figures: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)
        print(f"  {name}: {value:,.0f} us", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        sys_ = Systems(args.rtdb, peer, Path(tmp))
        for run in range(args.runs):
            print(f"-- run {run + 1} of {args.runs}", flush=True)
            with rtdb(sys_, "full", run) as server:  # type: ignore[attr-defined]
                add("rtdb GET of a small leaf", round_trip_us(server, "GET", args.n))
                add("rtdb PUT, --synchronous full (default)", round_trip_us(server, "PUT", args.n))
            with rtdb(sys_, "normal", run) as server:  # type: ignore[attr-defined]
                add("rtdb PUT, --synchronous normal (no fsync per commit)", round_trip_us(server, "PUT", args.n))
            add("SQLite commit alone, synchronous=FULL", commit_us(args.n))
            if peer:
                with sys_.peer_server() as server:
                    add("firebase-server GET of a small leaf", round_trip_us(server, "GET", args.n))
                    add("firebase-server PUT (in memory)", round_trip_us(server, "PUT", args.n))
    print("\nmedians of runs, each the median of its requests (min–max of runs):\n")
    print("| per request | µs | rate |\n|---|---|---|")
    for name, values in figures.items():
        med = statistics.median(values)
        print(f"| {name} | {med:,.0f} ({min(values):,.0f}–{max(values):,.0f}) | {1e6 / med:,.0f}/s |")


if __name__ == "__main__":
    main()
