"""What the console, the request log and the metrics cost the hot path (issue 14's budget:
at most 5 % of pipelined write throughput and of fan-out rate). Prints a table; asserts nothing.

Interleaved runs of three servers, each a fresh `rtdb serve --emulator` (realtime_bench's phases
``write`` and ``fanout``, lean protocol clients):

* **before** — the code of ``--before DIR`` (a checkout of a commit without the Monitor, the
  denial hook and the console; its ``rtdb`` package comes first on ``PYTHONPATH``);
* **after** — this checkout (or ``--after DIR``), nobody watching;
* **after, console open** — the same, with a console's two streams open and read the whole time:
  ``/.console/api/log`` (open: REST requests would become entries; these phases make WebSocket
  requests, which are counted only) and ``/.console/api/changes?ns=`` (every commit is sent as
  paths and values), plus a ``/metrics`` scrape every second.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/console_bench.py --before /tmp/before [--after /tmp/after] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from realtime_bench import NS, Server, phase_fanout, phase_write


@contextmanager
def code_of(directory: str | None) -> Iterator[None]:
    """Servers started inside run the ``rtdb`` and ``rtdb_cli`` packages of the checkout in
    ``directory`` (``rtdb_cli`` is its ``cli/`` folder: a link in a temporary directory)."""
    saved = os.environ.get("PYTHONPATH")
    shim = tempfile.TemporaryDirectory(prefix="rtdb-bench-code-")
    if directory:
        os.symlink(os.path.join(os.path.abspath(directory), "cli"), os.path.join(shim.name, "rtdb_cli"))
        os.environ["PYTHONPATH"] = os.pathsep.join([shim.name, os.path.abspath(directory)])
    try:
        yield
    finally:
        shim.cleanup()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


class ConsoleOpen:
    """A console's streams, read in threads until :meth:`close`; counts what they received."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.lines = {"log": 0, "changes": 0, "scrapes": 0}
        self.threads = [threading.Thread(target=self._read, args=(name, url), daemon=True) for name, url in
                        (("log", "/.console/api/log"), ("changes", f"/.console/api/changes?ns={NS}"))]
        self.threads.append(threading.Thread(target=self._scrape, daemon=True))
        for t in self.threads:
            t.start()

    def _read(self, name: str, path: str) -> None:
        while not self.stop.is_set():
            try:
                with httpx.stream("GET", self.base + path, timeout=None) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            self.lines[name] += 1
                        if self.stop.is_set():
                            return
            except httpx.HTTPError:
                pass

    def _scrape(self) -> None:
        while not self.stop.wait(1.0):
            try:
                httpx.get(self.base + "/metrics", timeout=5)
                self.lines["scrapes"] += 1
            except httpx.HTTPError:
                pass

    def close(self) -> dict[str, int]:
        self.stop.set()
        return dict(self.lines)


def run(variant: str, args: argparse.Namespace) -> dict[str, float]:
    directory = args.before if variant == "before" else args.after
    with code_of(directory):
        server = Server([])
    opened = ConsoleOpen(server.port) if variant == "after, console open" else None
    try:
        write = asyncio.run(phase_write(server, args))
        fan = asyncio.run(phase_fanout(server, args))
    finally:
        seen = opened.close() if opened else None
        server.stop()
    if seen is not None and not (seen["changes"] and seen["scrapes"]):
        raise RuntimeError(f"the console's changes stream or scrapes got nothing: {seen}")
    return {"pipelined": write["pipelined_per_s"], "fanout": fan["max"]["events_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="checkout of the commit to compare with")
    parser.add_argument("--after", default=None, help="checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=200, help="sequential writes (warm-up of the write phase)")
    parser.add_argument("--pipelined", type=int, default=20000)
    parser.add_argument("--subs", type=int, default=200)
    parser.add_argument("--msgs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="client processes holding the subscribers")
    args = parser.parse_args()
    args.budget_s, args.rate, args.rate_msgs = 120.0, 50, 50

    variants = ["before", "after", "after, console open"]
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for r in range(args.runs):
        for v in variants if r % 2 == 0 else reversed(variants):  # interleaved, alternating order
            results[v].append(run(v, args))
            print(f"run {r + 1} {v}: {results[v][-1]}", flush=True)

    def med(v: str, key: str) -> float:
        return statistics.median(x[key] for x in results[v])

    fmt: Callable[[float], str] = "{:,.0f}".format
    print(f"\nmedians of {args.runs} interleaved runs; ratio to 'before'\n")
    print("| figure | before | after | after, console open |")
    print("|---|---|---|---|")
    for key, label in (("pipelined", f"pipelined puts x{args.pipelined}, acks/s"),
                       ("fanout", f"fan-out, {args.subs} subscribers, events/s")):
        base = med("before", key)
        cells = [fmt(base)] + [f"{fmt(med(v, key))} ({med(v, key) / base:.2f}x)" for v in variants[1:]]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
