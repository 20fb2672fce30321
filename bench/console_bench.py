"""What the console, the request log and the metrics cost the hot path (issue 14's budget:
at most 5 % of pipelined write throughput and of fan-out rate). Prints a table; asserts nothing.

Interleaved runs of three servers, each a fresh `rtdb serve --emulator` (realtime_bench's phases
``write`` and ``fanout``, lean protocol clients):

* **before** — the code of ``--before DIR`` (a checkout of a commit without the Monitor, the
  denial hook and the console; its ``rtdb`` package comes first on ``PYTHONPATH``);
* **after** — this checkout (or ``--after DIR``), nobody watching;
* **after, console open** — the same, with a console's two streams open and read the whole time
  by a process of their own: ``/.console/api/log`` (open: REST requests and denials would become
  entries; these phases make WebSocket requests, which are counted only) and
  ``/.console/api/changes?ns=`` (the paths changed, coalesced per 0.1 s), plus a ``/metrics``
  scrape every second.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/console_bench.py --before /tmp/before [--after /tmp/after] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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
    ``directory`` (``rtdb_cli`` is its ``cli/rtdb_cli`` folder, or ``cli/`` in older checkouts: a link in a
    temporary directory)."""
    saved = os.environ.get("PYTHONPATH")
    shim = tempfile.TemporaryDirectory(prefix="rtdb-bench-code-")
    if directory:
        cli = os.path.join(os.path.abspath(directory), "cli")
        nested = os.path.join(cli, "rtdb_cli")  # cli/rtdb_cli since issue 15, cli/ before
        os.symlink(nested if os.path.isdir(nested) else cli, os.path.join(shim.name, "rtdb_cli"))
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
    """A console's streams, read in a process of their own (as a browser would be: threads in
    the bench's process would take the GIL from its client and count as the server's cost)
    until :meth:`close`; counts what they received."""

    def __init__(self, port: int) -> None:
        self.stop = multiprocessing.Event()
        self.counts = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_read_console, args=(port, self.stop, self.counts),
                                               daemon=True)
        self.process.start()

    def close(self) -> dict[str, int]:
        self.stop.set()
        try:
            return dict(self.counts.get(timeout=30))
        finally:
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()


def _read_console(port: int, stop: Any, counts: Any) -> None:
    """The console process: both streams and a ``/metrics`` scrape every second, in threads."""
    base = f"http://127.0.0.1:{port}"
    lines = {"log": 0, "changes": 0, "scrapes": 0}

    def read(name: str, path: str) -> None:
        while not stop.is_set():
            try:
                with httpx.stream("GET", base + path, timeout=None) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            lines[name] += 1
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                pass

    for name, path in (("log", "/.console/api/log"), ("changes", f"/.console/api/changes?ns={NS}")):
        threading.Thread(target=read, args=(name, path), daemon=True).start()
    while not stop.wait(1.0):
        try:
            httpx.get(base + "/metrics", timeout=5)
            lines["scrapes"] += 1
        except httpx.HTTPError:
            pass
    counts.put(dict(lines))


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
    return {"pipelined": write["pipelined_per_s"], "fanout": fan["max"]["events_per_s"],
            "put_cpu_us": 1e6 * write["pipelined_server_cpu_s"] / max(1, write["pipelined_acked"])}


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
    print(f"\nmedians of {args.runs} interleaved runs; ratio to 'before' (the console's process "
          f"shares the machine's {os.cpu_count()} CPUs with the server and the bench's clients)\n")
    print("| figure | before | after | after, console open |")
    print("|---|---|---|---|")
    for key, label in (("pipelined", f"pipelined puts x{args.pipelined}, acks/s"),
                       ("put_cpu_us", "server CPU per pipelined put, us"),
                       ("fanout", f"fan-out, {args.subs} subscribers, events/s")):
        base = med("before", key)
        cells = [fmt(base)] + [f"{fmt(med(v, key))} ({med(v, key) / base:.2f}x)" for v in variants[1:]]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
