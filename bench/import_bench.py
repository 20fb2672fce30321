"""`rtdb import` of a generated JSON file against a REST PUT of the same file to a real
`rtdb serve`, both with `--synchronous normal` (what import uses). Prints the median wall
time of each over runs, the import's start-up included (a whole `rtdb import` process);
asserts nothing.

    .venv/bin/python bench/import_bench.py [--users 100000] [--runs 5]

Each run writes a path that is still empty (a PUT of the value already stored changes
nothing and costs only the comparison): the import in a data directory of its own (the
server holds the other), the PUT on the server's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rest_bench import Server
from server_process import RTDB


def document(users: int) -> bytes:
    """``users`` user records of mixed leaves (strings, numbers, booleans, a nested object)."""
    rnd = random.Random(7)
    out = {
        f"user{i:07d}": {
            "name": f"User number {i}", "email": f"user{i}@example.com", "age": rnd.randint(18, 90),
            "score": round(rnd.random() * 1000, 3), "active": i % 3 == 0,
            "address": {"city": rnd.choice(["Paris", "Oslo", "Lima", "Pune"]), "zip": f"{rnd.randint(0, 99999):05d}"},
        }
        for i in range(users)
    }
    return json.dumps({"users": out}).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "doc.json"
        file.write_bytes(document(args.users))
        print(f"file: {file.stat().st_size / 1e6:.1f} MB, {args.users * 7:,} leaves")
        imports: list[float] = []
        puts: list[float] = []
        with Server(str(Path(tmp) / "served"), "--synchronous", "normal") as server, \
                httpx.Client(timeout=600) as http:
            body = file.read_bytes()
            for run in range(args.runs):
                t0 = time.perf_counter()
                subprocess.run([RTDB, "import", str(file), "--path", f"/bench{run}",
                                "--data-dir", str(Path(tmp) / "own"), "--namespace", "bench"],
                               check=True, capture_output=True)
                imports.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                http.put(f"{server.url}/bench{run}.json", params={"ns": "bench", "print": "silent"}, content=body,
                         headers={"Authorization": "Bearer owner"}).raise_for_status()
                puts.append(time.perf_counter() - t0)
        print(f"rtdb import: median {statistics.median(imports):.2f} s ({min(imports):.2f}–{max(imports):.2f})")
        print(f"REST PUT:    median {statistics.median(puts):.2f} s ({min(puts):.2f}–{max(puts):.2f})")
        print(f"import / PUT: {statistics.median(i / p for i, p in zip(imports, puts, strict=True)):.2f}")


if __name__ == "__main__":
    sys.exit(main())
