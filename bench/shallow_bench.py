"""A console page of a node with a million direct children (issue 14: "a console open on a
1,000,000-leaf namespace stays responsive"). Prints a table; asserts nothing.

One namespace is imported with ``rtdb import`` (``/big`` holds ``--children`` leaves), then a
fresh ``rtdb serve --emulator`` of each checkout reads it the way the console's tree does:

* ``probe`` — ``?shallow=true&limitToFirst=1`` (does the node have children? one per expanded row);
* ``first page`` — ``?shallow=true&limitToFirst=201`` (the first 200 rows and "more");
* ``later page`` — the same ``&startAfter="<a key half-way>"`` (the "more" button);
* ``whole listing`` — ``?shallow=true`` alone (every key: what firebase-tools asks for).

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/shallow_bench.py [--before /tmp/before] [--children 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from console_bench import code_of
from realtime_bench import NS, Server
from server_process import RTDB


def build(directory: Path, children: int) -> Path:
    """A data dir whose namespace ``NS`` holds ``children`` leaves at ``/big``."""
    source = directory / "big.json"
    with source.open("w") as out:
        out.write('{"big": {')
        out.write(",".join(f'"k{i:07d}": {i}' for i in range(children)))
        out.write('}, "small": {"a": 1}}')
    data = directory / "data"
    subprocess.run([RTDB, "import", "--data-dir", str(data), "--namespace", NS, str(source)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    source.unlink()
    return data


def timed(client: httpx.Client, url: str, runs: int) -> tuple[float, int]:
    """Median milliseconds of ``runs`` GETs, and the number of keys the last one listed."""
    times, keys = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append(1000 * (time.perf_counter() - t0))
        response.raise_for_status()
        keys = len(response.json() or {})
    return statistics.median(times), keys


def measure(data: Path, children: int, runs: int) -> dict[str, tuple[float, int]]:
    server = Server(["--data-dir", str(data)])  # the last --data-dir wins: the imported one
    half = json.dumps(f"k{children // 2:07d}")
    base = f"http://127.0.0.1:{server.port}/big.json?ns={NS}&shallow=true"
    try:
        with httpx.Client(timeout=600) as client:
            timed(client, f"http://127.0.0.1:{server.port}/small.json?ns={NS}", 1)  # open the namespace
            return {
                "probe": timed(client, base + "&limitToFirst=1", runs),
                "first page": timed(client, base + "&limitToFirst=201", runs),
                "later page": timed(client, base + f"&limitToFirst=201&startAfter={half}", runs),
                "whole listing": timed(client, base, max(1, runs // 2)),
            }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=None, help="checkout of the commit to compare with")
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtdb-shallow-bench-") as tmp:
        t0 = time.perf_counter()
        data = build(Path(tmp), args.children)
        print(f"imported {args.children:,} children in {time.perf_counter() - t0:.1f} s", flush=True)
        results = {}
        for name, directory in (("before", args.before), ("after", None)):
            if name == "before" and directory is None:
                continue
            with code_of(directory):
                results[name] = measure(data, args.children, args.runs)
            print(f"{name}: {results[name]}", flush=True)
    names = list(results)
    print(f"\nmedian ms of {args.runs} GETs (whole listing: {max(1, args.runs // 2)}); keys listed in brackets\n")
    print("| read of /big | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for figure in results[names[-1]]:
        cells = [f"{results[n][figure][0]:,.1f} ({results[n][figure][1]:,})" for n in names]
        print(f"| {figure} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
