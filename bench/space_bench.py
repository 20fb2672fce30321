"""Space given back (issue 12): the size of a namespace on disk after deleting half and then
all of a generated ~``--mb`` MB chat export, with this checkout's rtdb and with an older
one (``--before``), and how long writes wait behind the vacuum steps. Prints figures;
asserts nothing.

    .venv/bin/python bench/space_bench.py --before /tmp/before --mb 50

``--before DIR`` is a checkout (or ``git archive``) of the older tree: its ``rtdb``, ``cli``
and ``sdk`` folders are put on ``PYTHONPATH`` under their import names, so the same
virtualenv runs it. Without it only this checkout is measured.

* sizes: ``rtdb import`` of the export, then ``rtdb serve``: delete half the users and half
  the rooms (one PATCH of nulls each), wait until the files stop changing (at most
  ``--settle`` seconds, sampled every 0.25 s), then ``DELETE /`` and the same; the files
  (main + ``-wal``) at each point, then after the server stopped.
* write latency behind vacuum steps (this checkout only): on the loaded export, ``--cycles``
  rounds of: write 10 MB at ``/bulk``, delete it, then 1,000 sequential small REST PUTs
  on one keep-alive connection (the writer gives the 10 MB back between them); the same
  with ``--vacuum-free-percent 0`` (nothing to wait behind): p50, p99, p99.9, max.
* step cost (in process): a ``GroupWriter`` on a copy of the file after deleting half
  (with auto-vacuum off), compacting it and timing each ``maintain()`` call that vacuums
  (``step_pages`` pages, one commit at ``synchronous=FULL``): what a write waits behind
  at most.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_export import generate_export  # noqa: E402
from storage_bench import HttpConn, Server, free_port, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = "bench"
PYTHON = sys.executable


class System:
    """One rtdb tree run from this virtualenv (``src`` None: this checkout)."""

    def __init__(self, name: str, src: Path | None, tmp: Path) -> None:
        self.name = name
        self.env = dict(os.environ)
        self.tmp = tmp
        if src is not None:
            shim = tmp / f"shim-{name}"
            shim.mkdir()
            for module in ("rtdb", "rtdb_cli", "rtdb_sdk"):  # cli/rtdb_cli since issue 15, cli/ before
                folder = {"rtdb": "rtdb", "rtdb_cli": "cli", "rtdb_sdk": "sdk"}[module]
                nested = src / folder / module
                (shim / module).symlink_to(nested if nested.is_dir() else src / folder)
            self.env["PYTHONPATH"] = str(shim)

    def cmd(self, *args: str) -> list[str]:
        return [PYTHON, "-c", "from rtdb_cli.main import main; raise SystemExit(main())", *args]

    def run(self, *args: str) -> None:
        subprocess.run(self.cmd(*args), env=self.env, cwd=self.tmp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    @contextmanager
    def serve(self, data_dir: Path, *extra: str) -> Iterator[Server]:
        port = free_port()
        cmd = self.cmd("serve", "--emulator", "--port", str(port), "--data-dir", str(data_dir), "--log-level",
                       "warning", *extra)
        old_cwd = os.getcwd()
        os.chdir(self.tmp)  # '' on sys.path must not be this checkout for the older tree
        try:
            with serving(f"rtdb ({self.name})", cmd, port, self.tmp / f"{self.name}.log", self.env) as server:
                yield server
        finally:
            os.chdir(old_cwd)


def on_disk(data_dir: Path) -> tuple[int, int]:
    """(main file, WAL) bytes of the namespace."""
    sizes = []
    for suffix in ("", "-wal"):
        p = data_dir / f"{NS}.sqlite{suffix}"
        sizes.append(p.stat().st_size if p.exists() else 0)
    return sizes[0], sizes[1]


def settle(data_dir: Path, limit: float) -> tuple[tuple[int, int], float]:
    """Wait until the files stop changing for 2 s (at most ``limit`` s): their sizes and the wait."""
    start = time.monotonic()
    last, since = on_disk(data_dir), time.monotonic()
    while time.monotonic() - start < limit:
        time.sleep(0.25)
        now = on_disk(data_dir)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 2.0:
            break
    return last, since - start


def request(server: Server, method: str, path: str, value: Any = None) -> None:
    conn = HttpConn(server.port)
    body = b"" if value is None else json.dumps(value).encode()
    status, payload = conn.request(method, f"{path}.json?ns={NS}&print=silent", body)
    conn.close()
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {payload[:200]!r}")


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def sizes_phase(system: System, export: Any, settle_s: float) -> list[tuple[str, str]]:
    data = system.tmp / f"data-{system.name}"
    system.run("import", str(export.path), "--data-dir", str(data), "--namespace", NS)
    rows: list[tuple[str, str]] = []

    def show(label: str, sizes: tuple[int, int], waited: float | None = None) -> None:
        text = f"{mb(sum(sizes))} (file {mb(sizes[0])} + WAL {mb(sizes[1])})"
        if waited is not None:
            text += f", stable after {waited:.1f} s"
        rows.append((label, text))
        print(f"  {system.name:7} {label:44} {text}", flush=True)

    show("imported, server not started", on_disk(data))
    with system.serve(data) as server:
        users = json.loads(HttpConn(server.port).request("GET", f"/users.json?ns={NS}&shallow=true")[1])
        rooms = json.loads(HttpConn(server.port).request("GET", f"/rooms.json?ns={NS}&shallow=true")[1])
        request(server, "PATCH", "/users", {k: None for k in sorted(users)[::2]})
        request(server, "PATCH", "/rooms", {k: None for k in sorted(rooms)[::2]})
        show("half deleted, right after", on_disk(data))
        sizes, waited = settle(data, settle_s)
        show("half deleted, idle", sizes, waited)
        request(server, "DELETE", "/")
        show("all deleted, right after", on_disk(data))
        sizes, waited = settle(data, settle_s)
        show("all deleted, idle", sizes, waited)
    show("all deleted, server stopped", on_disk(data))
    shutil.rmtree(data)
    return rows


def put_latencies(server: Server, until: Any, at_least: int) -> list[float]:
    conn = HttpConn(server.port)
    times = []
    i = 0
    while i < at_least or not until():
        body = json.dumps({"n": i, "text": "a small write"}).encode()
        t = time.perf_counter()
        status, _ = conn.request("PUT", f"/probe/{i % 100}.json?ns={NS}&print=silent", body)
        times.append(time.perf_counter() - t)
        if status >= 300:
            raise RuntimeError(f"PUT: {status}")
        i += 1
    conn.close()
    return times


def quantiles(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    p999 = ms[min(len(ms) - 1, int(len(ms) * 0.999))]
    return (f"{len(ms):,} PUTs: p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms, "
            f"max {ms[-1]:.2f} ms")


def delete_half(server: Server) -> None:
    """Half the users and half the rooms: the vacuum then has live pages to move."""
    users = json.loads(HttpConn(server.port).request("GET", f"/users.json?ns={NS}&shallow=true")[1])
    rooms = json.loads(HttpConn(server.port).request("GET", f"/rooms.json?ns={NS}&shallow=true")[1])
    request(server, "PATCH", "/", {**{f"users/{k}": None for k in sorted(users)[::2]},
                                   **{f"rooms/{k}": None for k in sorted(rooms)[::2]}})


def latency_phase(system: System, export: Any, cycles: int) -> None:
    bulk = {f"k{i:05d}": "x" * 1000 for i in range(10_000)}  # ~10 MB: a fifth of the namespace
    for label, extra in (("vacuum running", ()), ("no vacuum (--vacuum-free-percent 0)", ("--vacuum-free-percent",
                                                                                          "0"))):
        data = system.tmp / "data-latency"
        system.run("import", str(export.path), "--data-dir", str(data), "--namespace", NS)
        times: list[float] = []
        with system.serve(data, *extra) as server:
            request(server, "PUT", "/probe", {"warm": 1})
            for _ in range(cycles):
                request(server, "PUT", "/bulk", bulk)
                request(server, "DELETE", "/bulk")
                times += put_latencies(server, lambda: True, 1000)  # the writer vacuums between these
            final = on_disk(data)
        print(f"  {label:38} {quantiles(times)} (file + WAL at the end {mb(sum(final))})", flush=True)
        shutil.rmtree(data)


def steps_phase(system: System, export: Any) -> None:
    from rtdb.storage.space import SpacePolicy
    from rtdb.storage.sqlite import GroupWriter

    data = system.tmp / "data-steps"
    system.run("import", str(export.path), "--data-dir", str(data), "--namespace", NS)
    with system.serve(data, "--vacuum-free-percent", "0") as server:
        delete_half(server)
    for pages in (64, 128, 256):
        copy = system.tmp / f"steps-{pages}"
        copy.mkdir()
        shutil.copy(data / f"{NS}.sqlite", copy / f"{NS}.sqlite")
        writer = GroupWriter(copy / f"{NS}.sqlite", synchronous="FULL", space=SpacePolicy(step_pages=pages))
        writer.open()
        assert writer.space is not None and writer.txn is not None
        page_size = writer.txn.conn.execute("PRAGMA page_size").fetchone()[0]
        writer.request_compact("bench")
        steps: list[float] = []
        checkpoints: list[float] = []
        done: list[Any] = []
        while not done:
            vacuumed, checkpointed = writer.space.stats.vacuum_steps, writer.space.stats.checkpoints
            t = time.perf_counter()
            done = writer.maintain()
            if writer.space.stats.vacuum_steps > vacuumed:
                steps.append(time.perf_counter() - t)
            elif writer.space.stats.checkpoints > checkpointed:
                checkpoints.append(time.perf_counter() - t)
            time.sleep(writer.space.due_in() or 0)
        writer.close()
        ms = sorted(s * 1000 for s in steps)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"  {pages} pages ({pages * page_size // 1024} KiB) per step: {len(ms)} steps, "
              f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms "
              f"({mb(done[0][1].bytes_before)} -> {mb(done[0][1].bytes_after)}); then the checkpoint: "
              f"{', '.join(f'{c * 1000:.1f} ms' for c in checkpoints)}", flush=True)
        shutil.rmtree(copy)
    shutil.rmtree(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--before", type=Path, default=None, help="an older checkout to compare with")
    ap.add_argument("--settle", type=float, default=60.0, help="longest wait for the files to stop changing (s)")
    ap.add_argument("--phases", default="sizes,latency,steps")
    ap.add_argument("--cycles", type=int, default=20, help="latency: rounds of write 10 MB, delete it, 1,000 PUTs")
    args = ap.parse_args()
    phases = args.phases.split(",")
    with tempfile.TemporaryDirectory(prefix="rtdb-space-") as tmp_name:
        tmp = Path(tmp_name)
        export = generate_export(tmp / "export.json", args.mb, args.seed)
        print(f"export: {mb(export.json_bytes)} of JSON, {export.leaves:,} leaves, {len(export.users):,} users, "
              f"{export.rooms:,} rooms, {export.messages:,} messages", flush=True)
        systems = [System("after", None, tmp)]
        if args.before is not None:
            systems.insert(0, System("before", args.before.resolve(), tmp))
        if "sizes" in phases:
            print("sizes on disk:")
            for system in systems:
                sizes_phase(system, export, args.settle)
        if "latency" in phases:
            print("sequential REST PUTs while the writer gives the space of a deleted export back:")
            latency_phase(systems[-1], export, args.cycles)
        if "steps" in phases:
            print("one vacuum step (in process, synchronous=FULL):")
            steps_phase(systems[-1], export)


if __name__ == "__main__":
    main()
