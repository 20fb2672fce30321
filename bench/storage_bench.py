"""Storage figures (issue 12) against a real `rtdb` of any checkout, beside firebase-server
in the same run. Prints figures (medians of ``--runs`` runs, min–max) and a Markdown table;
asserts nothing.

    .venv/bin/python bench/storage_bench.py                                   # this checkout's rtdb
    .venv/bin/python bench/storage_bench.py --rtdb /work/base/.venv/bin/rtdb --peer firebase-server
    .venv/bin/python bench/storage_bench.py --phases bigtree,writes --runs 1 --mb 5

Phases (each run uses fresh data directories and fresh servers):

* ``export`` — a generated, seeded ~``--mb`` MB Firebase export (users under 20-char push
  ids with nested profiles and settings, short and long strings, numbers, booleans, some
  arrays; rooms with members, pinned arrays and messages under push ids, some with
  reactions or attachments). ``rtdb import`` of it into an empty data directory: wall time,
  the import process's peak RSS (``wait4``), the namespace's files (main, ``-wal``,
  ``-shm``) when it exits and after a ``wal_checkpoint(TRUNCATE)`` by a fresh connection,
  and bytes on disk per byte of JSON. Then ``rtdb serve`` on that directory: cold reads of
  the root (first read after a start) over REST, WebSocket (a listen, ``q``) and the
  firebase@12 SDK (``get()``); the warm REST root read (median of 5); one user and one
  message over REST (median of 20). Then half the users are deleted (one PATCH of nulls),
  then everything (``DELETE /``): file sizes right after each, after ``--idle`` seconds and
  once the server has stopped.
* ``bigtree`` — the peer bench's big tree: 1,000 children x 100 fields written at /big
  (REST PATCHes of 100 children); each cold read follows a restart (firebase-server keeps
  everything in memory, so its "cold" read is the first on a freshly loaded server): /big
  over REST, WebSocket (a listen), the SDK's ``get()`` (rtdb) and ``onValue`` once (both);
  one child over REST (median of 20); ``--leaf-writes`` sequential PUTs of one leaf inside
  the 100-field children.
* ``writes`` — ``--puts`` small PUTs on one keep-alive connection (the server's default
  ``--synchronous full``), then the same number with ``--in-flight`` requests in flight
  (as many keep-alive connections).

HTTP goes through a minimal raw-socket HTTP/1.1 client (httpx spends ~0.5 ms per request,
which would hide the server); WebSocket through ``websockets``' sync client (no
compression); the SDK through ``bench/storage_sdk_read.mjs`` in Node. Reads stop the clock
when the whole body has arrived, before any parsing. Clients and server share the machine.

``--peer firebase-server`` runs the same bigtree and writes phases against firebase-server
as installed by ``../shared/peer-bench`` (``$PEERS_DIR``, default
``$TMPDIR/rtdb-peer-bench/peers``; its ``run-all.sh`` installs it); it is skipped with a
message when that installation is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat_export import Export, count_leaves, generate_export
from server_process import free_port, stop
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
SDK_READ = Path(__file__).with_name("storage_sdk_read.mjs")
PEER_BENCH = ROOT.parent / "shared" / "peer-bench"
PEERS_DIR = Path(os.environ.get("PEERS_DIR") or Path(tempfile.gettempdir()) / "rtdb-peer-bench" / "peers")
NS = "bench"
PHASES = ("export", "bigtree", "writes")


# ----------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """Every measured value by metric and system, in the order metrics were first seen."""

    units: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, metric: str, system: str, value: float, unit: str) -> None:
        self.units.setdefault(metric, unit)
        self.values.setdefault(metric, {}).setdefault(system, []).append(value)
        print(f"  [{system}] {metric}: {show(value, unit)}", flush=True)

    def cell(self, metric: str, system: str) -> str:
        got = self.values[metric].get(system)
        if not got:
            return "—"
        unit = self.units[metric]
        text = show(statistics.median(got), unit)
        if len(got) > 1 and min(got) != max(got):
            text += f" ({show(min(got), unit, bare=True)}–{show(max(got), unit, bare=True)})"
        return text

    def table(self, systems: list[str]) -> str:
        lines = [f"| metric | {' | '.join(systems)} |", "|---" * (len(systems) + 1) + "|"]
        for metric in self.values:
            lines.append(f"| {metric} | {' | '.join(self.cell(metric, s) for s in systems)} |")
        return "\n".join(lines)


def show(value: float, unit: str, *, bare: bool = False) -> str:
    if unit == "s":
        text = f"{value:.2f}"
    elif unit == "ms":
        text = f"{value:.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"
    elif unit == "MB":
        text = f"{value:.1f}"
    elif unit == "/s":
        text = f"{value:,.0f}"
    else:  # "x", a ratio
        text = f"{value:.2f}"
    if bare:
        return text
    return {"s": f"{text} s", "ms": f"{text} ms", "MB": f"{text} MB", "/s": f"{text}/s", "x": f"{text}×"}[unit]


# ----------------------------------------------------------------------------- processes


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    """One server process on a free loopback port, in its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        stop(self.proc, group=True, timeout=30)


@contextmanager
def serving(name: str, cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    server = Server(name, proc, port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start: {log.read_text(errors='replace')[-2000:]}")
            try:
                probe = HttpConn(port)
                probe.request("GET", "/healthz")  # any answer will do: it is listening
                probe.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {log}") from None
                time.sleep(0.05)
        yield server
    finally:
        server.stop()


@dataclass
class Systems:
    rtdb: Path
    peer: bool
    tmp: Path

    def rtdb_server(self, data_dir: Path) -> AbstractContextManager[Server]:
        port = free_port()
        cmd = [str(self.rtdb), "serve", "--emulator", "--port", str(port), "--data-dir", str(data_dir),
               "--log-level", "warning"]
        return serving("rtdb", cmd, port, self.tmp / "rtdb.log")

    def peer_server(self) -> AbstractContextManager[Server]:
        port = free_port()
        cmd = ["node", str(PEER_BENCH / "servers" / "firebase-server.js"), "--port", str(port)]
        return serving("firebase-server", cmd, port, self.tmp / "firebase-server.log", {"PEERS_DIR": str(PEERS_DIR)})


# ----------------------------------------------------------------------------- clients


class HttpConn:
    """One keep-alive HTTP/1.1 connection on a plain socket (Content-Length or chunked answers)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self.sock.sendall(head.encode() + body)
        lines = self._until(b"\r\n\r\n").split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while size := int(self._until(b"\r\n"), 16):
                parts.append(self._exactly(size))
                self._until(b"\r\n")
            self._until(b"\r\n")
            return status, b"".join(parts)
        return status, self._exactly(int(fields.get(b"content-length", b"0")))

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _until(self, mark: bytes) -> bytes:
        start = 0
        while (end := self.buf.find(mark, start)) < 0:
            start = max(0, len(self.buf) - len(mark))
            self._fill()
        out = bytes(self.buf[:end])
        del self.buf[: end + len(mark)]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def rest(server: Server, method: str, path: str, value: object = None, *, query: str = "") -> tuple[float, bytes]:
    """One request on a new connection: seconds until the whole answer arrived, and its body."""
    conn = HttpConn(server.port)
    body = b"" if method in ("GET", "DELETE") else json.dumps(value).encode()
    t = time.perf_counter()
    status, payload = conn.request(method, f"{path}.json?ns={NS}{query}", body)
    elapsed = time.perf_counter() - t
    conn.close()
    if status >= 300:
        raise RuntimeError(f"{server.name}: {method} {path} -> {status} {payload[:300]!r}")
    return elapsed, payload


def median_get(server: Server, path: str, n: int) -> float:
    conn = HttpConn(server.port)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = conn.request("GET", f"{path}.json?ns={NS}")
        times.append(time.perf_counter() - t)
        assert status == 200, status
    conn.close()
    return statistics.median(times)


def ws_messages(ws: ClientConnection) -> Iterator[str]:
    """Whole wire-protocol messages: a frame holding only digits announces that many parts."""
    while True:
        frame = ws.recv(timeout=600)
        assert isinstance(frame, str)
        if len(frame) <= 6 and frame.isdigit():
            frame = "".join(str(ws.recv(timeout=600)) for _ in range(int(frame)))
        yield frame


def ws_listen(server: Server, path: str) -> tuple[float, str]:
    """A listen (``q``) on a fresh connection: seconds until both the value and the ``ok``
    arrived. A message over 64 KB is the value and is not parsed inside the timing."""
    with connect(f"ws://127.0.0.1:{server.port}/.ws?v=5&ns={NS}", compression=None, max_size=None,
                 open_timeout=30) as ws:
        messages = ws_messages(ws)
        next(messages)  # the handshake
        t = time.perf_counter()
        ws.send(json.dumps({"t": "d", "d": {"r": 1, "a": "q", "b": {"p": path, "h": ""}}}))
        value: str | None = None
        ok = False
        while value is None or not ok:
            msg = next(messages)
            if len(msg) > 65536:
                value = msg
                continue
            d = json.loads(msg)["d"]
            if d.get("r") == 1:
                ok = True
            elif d.get("a") in ("d", "m"):
                value = msg
        return time.perf_counter() - t, value


def sdk_read(server: Server, path: str, mode: str, modules: Path) -> dict[str, Any]:
    out = subprocess.run(["node", str(SDK_READ), "--port", str(server.port), "--ns", NS, "--path", path,
                          "--mode", mode, "--modules", str(modules)],
                         capture_output=True, text=True, timeout=900, check=False)
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"error": out.stderr[-500:]}
    if "error" in result:
        raise RuntimeError(f"SDK {mode} of {path} on {server.name}: {result['error']}")
    return result


async def put_concurrently(port: int, paths: list[str], body: bytes, in_flight: int) -> float:
    """``in_flight`` keep-alive connections, each sending its next PUT when the last is answered."""
    todo = iter(paths)

    async def lane() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in todo:
            writer.write(f"PUT {path}.json?ns={NS} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            assert head.startswith(b"http/1.1 200"), head[:100]
            if b"transfer-encoding: chunked" in head:
                while size := int(await reader.readuntil(b"\r\n"), 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            else:
                await reader.readexactly(int(head.split(b"content-length:")[1].split(b"\r\n")[0]))
        writer.close()

    t = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return len(paths) / (time.perf_counter() - t)


# ----------------------------------------------------------------------------- files


def namespace_files(data_dir: Path) -> dict[str, float]:
    """MB of the namespace's main file, its WAL and shared memory, and their total (files
    named ``<ns>.*`` anywhere in the data directory but its lock files)."""
    sizes = {"main": 0.0, "wal": 0.0, "shm": 0.0}
    for f in data_dir.rglob(f"{NS}.*"):
        if ".locks" in f.relative_to(data_dir).parts or not f.is_file():
            continue
        kind = "wal" if f.name.endswith("-wal") else "shm" if f.name.endswith("-shm") else "main"
        sizes[kind] += f.stat().st_size / 1e6
    sizes["total"] = sizes["main"] + sizes["wal"] + sizes["shm"]
    return sizes


def checkpoint(data_dir: Path) -> None:
    for f in data_dir.glob(f"{NS}.sqlite"):
        with closing(sqlite3.connect(f)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def add_files(fig: Figures, when: str, data_dir: Path) -> None:
    sizes = namespace_files(data_dir)
    fig.add(f"files {when}: main", "rtdb", sizes["main"], "MB")
    fig.add(f"files {when}: WAL", "rtdb", sizes["wal"], "MB")


# ----------------------------------------------------------------------------- phases


def phase_export(fig: Figures, sys_: Systems, export: Export, run: int, args: argparse.Namespace) -> None:
    data_dir = sys_.tmp / f"import-{run}"
    log = sys_.tmp / "import.log"
    with log.open("ab") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([str(sys_.rtdb), "import", str(export.path), "--data-dir", str(data_dir),
                                 "--namespace", NS], stdout=subprocess.DEVNULL, stderr=err)
        # the child's own high-water mark (VmHWM), read until it exits: wait4's ru_maxrss would
        # also count this (large) bench process, whose pages the child had at fork
        peak = 0.0
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                peak = max(peak, peak_rss_mb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"rtdb import failed: {log.read_text(errors='replace')[-2000:]}")
    json_mb = export.json_bytes / 1e6
    fig.add("import: wall time", "rtdb", wall, "s")
    fig.add("import: peak RSS", "rtdb", peak, "MB")
    sizes = namespace_files(data_dir)
    fig.add("import: on disk at exit (main + WAL + shm)", "rtdb", sizes["total"], "MB")
    fig.add("import: WAL at exit", "rtdb", sizes["wal"], "MB")
    checkpoint(data_dir)
    sizes = namespace_files(data_dir)
    fig.add("import: on disk after checkpoint(TRUNCATE)", "rtdb", sizes["total"], "MB")
    fig.add("bytes on disk / bytes of JSON (after checkpoint)", "rtdb", sizes["total"] / json_mb, "x")

    for label in ("REST", "WebSocket listen", "SDK get()"):
        with sys_.rtdb_server(data_dir) as server:
            if label == "REST":
                ms = rest(server, "GET", "/")[0] * 1000
            elif label == "WebSocket listen":
                ms = ws_listen(server, "/")[0] * 1000
            else:
                ms = sdk_read(server, "/", "get", args.modules)["ms"]
            fig.add(f"export root, cold read: {label}", "rtdb", ms, "ms")
    with sys_.rtdb_server(data_dir) as server:
        times = [rest(server, "GET", "/")[0] for _ in range(6)][1:]
        fig.add("export root, warm REST read (median of 5)", "rtdb", statistics.median(times) * 1000, "ms")
        fig.add("export: server peak RSS after 6 REST root reads", "rtdb", peak_rss_mb(server.proc.pid), "MB")
        user = export.users[len(export.users) // 2]
        fig.add("REST GET one user (median of 20)", "rtdb", median_get(server, f"/users/{user}", 20) * 1000, "ms")
        fig.add("REST GET one message (median of 20)", "rtdb",
                median_get(server, f"/{export.sample_message}", 20) * 1000, "ms")

    with sys_.rtdb_server(data_dir) as server:
        half = {uid: None for uid in export.users[::2]}
        elapsed, _ = rest(server, "PATCH", "/users", half, query="&print=silent")
        fig.add(f"delete half the users: one PATCH of {len(half):,} nulls", "rtdb", elapsed, "s")
        add_files(fig, "right after deleting half the users", data_dir)
        time.sleep(args.idle)
        add_files(fig, f"{args.idle:g} s after deleting half the users", data_dir)
        elapsed, _ = rest(server, "DELETE", "/", query="&print=silent")
        fig.add("delete everything: DELETE /", "rtdb", elapsed, "s")
        add_files(fig, "right after deleting everything", data_dir)
        time.sleep(args.idle)
        add_files(fig, f"{args.idle:g} s after deleting everything", data_dir)
    add_files(fig, "after deleting everything, server stopped", data_dir)
    shutil.rmtree(data_dir)


def load_big_tree(server: Server) -> float:
    child = {f"f{j:02d}": "" for j in range(100)}
    t = time.perf_counter()
    for start in range(0, 1000, 100):
        batch = {f"c{i:04d}": {k: f"v{i}.{k[1:]}" for k in child} for i in range(start, start + 100)}
        rest(server, "PATCH", "/big", batch, query="&print=silent")
    return time.perf_counter() - t


def big_reads(server: Server, label: str, args: argparse.Namespace) -> float:
    if label == "REST":
        elapsed, body = rest(server, "GET", "/big")
        leaves = count_leaves(json.loads(body))
    elif label == "WebSocket listen":
        elapsed, msg = ws_listen(server, "/big")
        leaves = count_leaves(json.loads(msg)["d"]["b"]["d"])
    else:
        got = sdk_read(server, "/big", "get" if label == "SDK get()" else "once", args.modules)
        elapsed, leaves = got["ms"] / 1000, int(got["leaves"])
    if leaves != 100_000:
        raise RuntimeError(f"{server.name}: {label} read of /big gave {leaves} leaves")
    return elapsed * 1000


def leaf_writes(server: Server, n: int) -> float:
    conn = HttpConn(server.port)
    t = time.perf_counter()
    for i in range(n):
        status, _ = conn.request("PUT", f"/big/c{(i * 37) % 1000:04d}/f{i % 100:02d}.json?ns={NS}", b'"w%d"' % i)
        assert status == 200, status
    rate = n / (time.perf_counter() - t)
    conn.close()
    return rate


def phase_bigtree(fig: Figures, sys_: Systems, run: int, args: argparse.Namespace) -> None:
    labels = ["REST", "WebSocket listen", "SDK get()", "SDK onValue once"]
    data_dir = sys_.tmp / f"big-{run}"
    with sys_.rtdb_server(data_dir) as server:
        fig.add("big tree: write 1,000 x 100 (10 PATCHes)", "rtdb", load_big_tree(server), "s")
    for label in labels:
        with sys_.rtdb_server(data_dir) as server:
            fig.add(f"big tree /big, cold read: {label}", "rtdb", big_reads(server, label, args), "ms")
    with sys_.rtdb_server(data_dir) as server:
        big_reads(server, "REST", args)
        fig.add("big tree: one 100-leaf child, REST (median of 20)", "rtdb",
                median_get(server, "/big/c0500", 20) * 1000, "ms")
        fig.add("leaf PUTs inside 100-field children, sequential", "rtdb", leaf_writes(server, args.leaf_writes), "/s")
    if not sys_.peer:
        return
    for label in labels:
        if label == "SDK get()":
            continue  # firebase-server does not answer the protocol's `g`
        with sys_.peer_server() as server:
            load = load_big_tree(server)
            if label == "REST":
                fig.add("big tree: write 1,000 x 100 (10 PATCHes)", server.name, load, "s")
            fig.add(f"big tree /big, cold read: {label}", server.name, big_reads(server, label, args), "ms")
            if label == "REST":
                fig.add("big tree: one 100-leaf child, REST (median of 20)", server.name,
                        median_get(server, "/big/c0500", 20) * 1000, "ms")
                fig.add("leaf PUTs inside 100-field children, sequential", server.name,
                        leaf_writes(server, args.leaf_writes), "/s")


def phase_writes(fig: Figures, sys_: Systems, run: int, args: argparse.Namespace) -> None:
    with sys_.rtdb_server(sys_.tmp / f"writes-{run}") as server:
        write_rates(fig, server, args)
    if sys_.peer:
        with sys_.peer_server() as server:
            write_rates(fig, server, args)


def write_rates(fig: Figures, server: Server, args: argparse.Namespace) -> None:
    body = b'{"i":1,"name":"item-1","ok":true,"ts":1764300000000}'
    conn = HttpConn(server.port)
    for i in range(200):
        conn.request("PUT", f"/warm/k{i}.json?ns={NS}", body)
    t = time.perf_counter()
    for i in range(args.puts):
        status, _ = conn.request("PUT", f"/items/s{i:06d}.json?ns={NS}", body)
        assert status == 200, status
    rate = args.puts / (time.perf_counter() - t)
    fig.add("REST PUT, sequential on one keep-alive connection", server.name, rate, "/s")
    conn.close()
    paths = [f"/items/c{i:06d}" for i in range(args.puts)]
    rate = asyncio.run(put_concurrently(server.port, paths, body, args.in_flight))
    fig.add(f"REST PUT, {args.in_flight} in flight ({args.in_flight} connections)", server.name, rate, "/s")


# ----------------------------------------------------------------------------- main


def firebase_modules() -> Path:
    for folder in (ROOT / "tests" / "node", PEERS_DIR):
        if (folder / "node_modules" / "firebase" / "package.json").exists():
            return folder
    raise SystemExit("no firebase@12 found: run `make install` (tests/node) or the peer bench's installer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtdb", type=Path, default=ROOT / ".venv" / "bin" / "rtdb", help="the rtdb executable to measure")
    ap.add_argument("--peer", choices=["firebase-server"], help="also measure this peer (bigtree, writes)")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=float, default=50, help="size of the generated export")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--idle", type=float, default=30, help="seconds idle before the second file sizes")
    ap.add_argument("--puts", type=int, default=5000)
    ap.add_argument("--in-flight", type=int, default=32)
    ap.add_argument("--leaf-writes", type=int, default=2000)
    ap.add_argument("--modules", type=Path, default=None, help="folder whose node_modules holds firebase@12")
    args = ap.parse_args()
    args.modules = args.modules or firebase_modules()
    phases = [p for p in args.phases.split(",") if p]
    if unknown := set(phases) - set(PHASES):
        ap.error(f"unknown phases: {', '.join(sorted(unknown))}")
    peer = args.peer is not None
    if peer and not (PEERS_DIR / "node_modules" / "firebase-server" / "package.json").exists():
        print(f"firebase-server is not installed in {PEERS_DIR} ({PEER_BENCH}/run-all.sh installs it): "
              "measuring rtdb only")
        peer = False
    version = subprocess.run([str(args.rtdb), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    checkout = args.rtdb.resolve().parents[2]  # <checkout>/.venv/bin/rtdb
    rev = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty"], capture_output=True,
                         text=True, check=False).stdout.strip() or "no git"
    print(f"{version} at {rev} ({args.rtdb}); {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
    fig = Figures()
    with tempfile.TemporaryDirectory(prefix="rtdb-storage-bench-") as tmp:
        sys_ = Systems(args.rtdb, peer, Path(tmp))
        export = None
        if "export" in phases:
            t = time.perf_counter()
            export = generate_export(Path(tmp) / "export.json", args.mb, args.seed)
            print(f"export: {export.json_bytes / 1e6:.1f} MB of JSON, {export.leaves:,} leaves, "
                  f"{len(export.users):,} users, {export.rooms:,} rooms, {export.messages:,} messages "
                  f"(generated in {time.perf_counter() - t:.0f} s)")
        for run in range(args.runs):
            print(f"-- run {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.1f})", flush=True)
            if export is not None:
                phase_export(fig, sys_, export, run, args)
            if "bigtree" in phases:
                phase_bigtree(fig, sys_, run, args)
            if "writes" in phases:
                phase_writes(fig, sys_, run, args)
    print(f"\nmedians of {args.runs} runs (min–max):\n")
    print(fig.table(["rtdb", "firebase-server"] if peer else ["rtdb"]))


if __name__ == "__main__":
    main()
