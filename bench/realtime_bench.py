"""Realtime path figures against a real `rtdb serve --emulator` subprocess. Prints
figures; asserts nothing.

    .venv/bin/python bench/realtime_bench.py                      # every phase, 3 runs each
    .venv/bin/python bench/realtime_bench.py --phases write --runs 1
    .venv/bin/python bench/realtime_bench.py --phases conns --conns 5000,20000

Phases (each run starts a fresh server on a free port with an empty data dir):

* ``write``  — one connection: sequential awaited ``p`` (put) requests, then
  ``--pipelined`` puts issued back to back; acks/s.
* ``fanout`` — ``--subs`` subscribers (spread over ``--workers`` processes) with a
  value listener on ``fanout/latest``; one writer sets ``{seq, ts, body}`` at
  ``--rate`` msg/s (write→event latency p50/p99), then ``--msgs`` as fast as it
  can (events delivered per second).
* ``conns``  — idle connections with one listener each at every level of
  ``--conns``; server RSS growth per connection, and whether one write reaches
  every connection afterwards.

Clients are lean protocol-level ones: websockets' sans-I/O ``ClientProtocol``
on a bare asyncio protocol (uvloop), speaking Firebase wire protocol v5.
Server RSS / CPU come from ``/proc`` (the server process and its children).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from server_process import free_port, start_serve, stop, wait_healthy
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

ROOT = Path(__file__).resolve().parents[1]
NS = "bench"
_decode = msgspec.json.decode
_encode = msgspec.json.encode


def now_ms() -> float:
    return time.time() * 1000.0


# ----------------------------------------------------------------------------- server


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _pids(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def proc_stats(pid: int) -> dict[str, float]:
    """RSS (MB) and CPU seconds of ``pid`` and its descendants."""
    rss_kb = 0
    cpu = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in _pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return {"rss_mb": rss_kb / 1024, "cpu_s": cpu}


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid`` (and descendants), keyed ``name/tid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for p in _pids(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/stat") as f:
                    head, _, rest = f.read().rpartition(")")
                fields = rest.split()
                name = head.partition("(")[2]
                key = f"{name}/{tid}"
                out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
    return out


class Server:
    def __init__(self, extra: list[str], wrap: str = "") -> None:
        self.port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="rtdb-rt-bench-")
        self.log = open(Path(self.tmp.name) / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = start_serve(self.port, f"{self.tmp.name}/data", ["--emulator", "--log-level", "warning", *extra],
                                out=self.log, wrap=shlex.split(wrap), cwd=ROOT)
        wait_healthy(f"http://127.0.0.1:{self.port}", self.proc, log=self.log_text)

    def log_text(self) -> str:
        self.log.flush()
        return (Path(self.tmp.name) / "server.log").read_text(errors="replace")[-3000:]

    def stats(self) -> dict[str, float]:
        return proc_stats(self.proc.pid)

    def stop(self) -> None:
        stop(self.proc, group=True, timeout=15)
        self.log.close()
        self.tmp.cleanup()


# ----------------------------------------------------------------------------- client


class WireClient(asyncio.Protocol):
    """Firebase wire protocol v5 over websockets' sans-I/O client, on a bare transport."""

    def __init__(self, port: int, on_push: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/.ws?v=5&ns={NS}"), max_size=None)
        self.on_push = on_push
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.r = 0
        self.acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.on_ack: Callable[[int, dict[str, Any]], None] | None = None
        self._count = 0
        self._parts: list[bytes] = []

    @classmethod
    async def open(cls, port: int, on_push: Callable[[dict[str, Any]], None] | None = None) -> WireClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(port, on_push), "127.0.0.1", port)
        await asyncio.wait_for(client.ready, 30)
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        self.ws.send_request(self.ws.connect())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the handshake"))
        for fut in self.acks.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))

    def _flush(self) -> None:
        assert self.transport is not None
        data = self.ws.data_to_send()
        if data:
            self.transport.write(b"".join(data))

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                continue
            if event.opcode is Opcode.TEXT or event.opcode is Opcode.CONT:
                self._frame(bytes(event.data))
        self._flush()  # pongs, close replies

    def _frame(self, data: bytes) -> None:
        if self._count:
            self._parts.append(data)
            self._count -= 1
            if self._count:
                return
            data, self._parts = b"".join(self._parts), []
        elif len(data) <= 6 and data.isdigit():
            self._count = int(data)
            return
        msg = _decode(data)
        if msg["t"] == "c":
            if msg["d"]["t"] == "h" and not self.ready.done():
                self.ready.set_result(None)
            return
        d = msg["d"]
        r = d.get("r")
        if r is not None:
            if self.on_ack is not None:
                self.on_ack(r, d["b"])
            fut = self.acks.pop(r, None)
            if fut is not None and not fut.done():
                fut.set_result(d["b"])
        elif self.on_push is not None:
            self.on_push(d)

    def send(self, action: str, body: dict[str, Any], *, flush: bool = True) -> int:
        self.r += 1
        self.ws.send_text(_encode({"t": "d", "d": {"r": self.r, "a": action, "b": body}}))
        if flush:
            self._flush()
        return self.r

    def request(self, action: str, body: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[self.send(action, body)] = fut
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# ----------------------------------------------------------------------------- workers


def worker_main(pipe: Pipe, port: int) -> None:
    raise_fd_limit()
    uvloop.run(_worker(pipe, port))


async def _worker(pipe: Pipe, port: int) -> None:
    """Holds subscriber connections; answers the parent's commands over ``pipe``."""
    loop = asyncio.get_running_loop()
    clients: list[WireClient] = []
    state = {"rec": False, "count": 0, "first": None, "last": None}
    lat: list[float] = []
    last_seq: dict[int, int] = {}
    warm: set[int] = set()

    def on_push(cid: int) -> Callable[[dict[str, Any]], None]:
        def push(d: dict[str, Any]) -> None:
            v = d["b"]["d"]
            if not isinstance(v, dict) or "seq" not in v:
                return
            seq = v["seq"]
            last_seq[cid] = seq
            if seq < 0:
                warm.add(cid)
                return
            if state["rec"]:
                t = now_ms()
                state["count"] += 1
                if state["first"] is None:
                    state["first"] = t
                state["last"] = t
                lat.append(t - v["ts"])
        return push

    ids = itertools.count()

    async def open_one(path: str) -> None:
        cid = next(ids)
        c = await WireClient.open(port, on_push(cid))
        clients.append(c)
        await c.request("q", {"p": "/" + path, "h": ""})

    async def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        kind = cmd["cmd"]
        if kind == "open":
            ok = failed = 0
            errors: list[str] = []
            for i in range(0, cmd["n"], cmd.get("batch", 50)):
                batch = min(cmd.get("batch", 50), cmd["n"] - i)
                for r in await asyncio.gather(*[open_one(cmd["path"]) for _ in range(batch)],
                                              return_exceptions=True):
                    if isinstance(r, BaseException):
                        failed += 1
                        if len(errors) < 3:
                            errors.append(repr(r))
                    else:
                        ok += 1
            return {"ok": ok, "failed": failed, "errors": errors}
        if kind == "go":
            state.update(rec=True, count=0, first=None, last=None)
            lat.clear()
            state["cpu0"] = time.process_time()
            return {}
        if kind == "poll":
            seq = cmd.get("seq")
            return {"count": state["count"], "warm": len(warm),
                    "alive": sum(1 for s in last_seq.values() if s == seq) if seq is not None else 0,
                    "connected": sum(1 for c in clients if not c.closed), "total": len(clients)}
        if kind == "collect":
            state["rec"] = False
            return {"count": state["count"], "first": state["first"], "last": state["last"], "lat": lat,
                    "cpu_s": time.process_time() - state.get("cpu0", 0.0)}
        raise ValueError(kind)

    done = asyncio.Event()

    async def serve(cmd: dict[str, Any]) -> None:
        try:
            pipe.send(await handle(cmd))
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            pipe.send({"error": repr(exc)})

    def reader() -> None:  # a thread: add_reader would make the pipe non-blocking for send()
        while True:
            cmd = pipe.recv()
            if cmd["cmd"] == "exit":
                loop.call_soon_threadsafe(done.set)
                return
            asyncio.run_coroutine_threadsafe(serve(cmd), loop)

    threading.Thread(target=reader, daemon=True).start()
    pipe.send({"hello": True})
    await done.wait()
    for c in clients:
        c.close()


class Workers:
    def __init__(self, n: int, port: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(child, port), daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
        for pipe in self.pipes:
            pipe.recv()

    async def ask(self, cmds: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(cmds, dict):
            cmds = [cmds] * len(self.pipes)
        for pipe, cmd in zip(self.pipes, cmds):
            pipe.send(cmd)
        out = []
        for pipe in self.pipes:
            while not pipe.poll():
                await asyncio.sleep(0.01)
            reply = pipe.recv()
            if "error" in reply:
                raise RuntimeError(reply["error"])
            out.append(reply)
        return out

    async def poll(self, seq: int | None = None) -> dict[str, int]:
        rs = await self.ask({"cmd": "poll", "seq": seq})
        return {k: sum(r[k] for r in rs) for k in ("count", "warm", "alive", "connected", "total")}

    def exit(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send({"cmd": "exit"})
            except OSError:
                pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()


def split(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# ----------------------------------------------------------------------------- phases


def obj(i: int) -> dict[str, Any]:
    return {"i": i, "name": f"item-{i}", "ok": True, "ts": int(now_ms())}


async def phase_write(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    c = await WireClient.open(server.port)
    for i in range(20):
        await c.request("p", {"p": f"/warm/k{i}", "d": obj(i)})
    out: dict[str, Any] = {}

    s0, t0 = server.stats(), time.perf_counter()
    for i in range(args.writes):
        body = await c.request("p", {"p": f"/w/seq/k{i}", "d": obj(i)})
        assert body["s"] == "ok", body
    dt = time.perf_counter() - t0
    out["sequential_per_s"] = args.writes / dt
    out["sequential_ms"] = 1000 * dt / args.writes
    out["sequential_server_cpu_s"] = server.stats()["cpu_s"] - s0["cpu_s"]

    n = args.pipelined
    done = asyncio.get_running_loop().create_future()
    acked = failed = 0
    last_r = c.r + n

    def on_ack(r: int, b: dict[str, Any]) -> None:
        nonlocal acked, failed
        if b.get("s") == "ok":
            acked += 1
        else:
            failed += 1
        if r == last_r and not done.done():
            done.set_result(None)

    c.on_ack = on_ack
    s0, t0, cpu0 = server.stats(), time.perf_counter(), time.process_time()
    chunk = 500
    for start in range(0, n, chunk):
        for i in range(start, min(n, start + chunk)):
            c.send("p", {"p": f"/w/pipe/k{i}", "d": obj(i)}, flush=False)
        c._flush()
        await asyncio.sleep(0)  # let acks in, as a real client would
    issue = time.perf_counter() - t0
    try:
        await asyncio.wait_for(done, args.budget_s)
    except TimeoutError:
        pass
    dt = time.perf_counter() - t0
    s1 = server.stats()
    out.update(pipelined=n, pipelined_acked=acked, pipelined_failed=failed, pipelined_issue_s=issue,
               pipelined_per_s=acked / dt, pipelined_server_cpu_s=s1["cpu_s"] - s0["cpu_s"],
               pipelined_client_cpu_s=time.process_time() - cpu0, pipelined_s=dt,
               server_rss_mb=s1["rss_mb"])
    c.close()
    return out


async def phase_fanout(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    k = max(1, min(args.workers, args.subs))
    ws = Workers(k, server.port)
    out: dict[str, Any] = {"subs": args.subs, "workers": k}
    try:
        path = "fanout/latest"
        t0 = time.perf_counter()
        opened = await ws.ask([{"cmd": "open", "n": n, "path": path} for n in split(args.subs, k)])
        out["subscribed"] = sum(r["ok"] for r in opened)
        out["subscribe_s"] = time.perf_counter() - t0
        w = await WireClient.open(server.port)
        seq = -1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            w.send("p", {"p": "/" + path, "d": {"seq": seq, "ts": now_ms()}})
            seq -= 1
            await asyncio.sleep(0.2)
            if (await ws.poll())["warm"] >= out["subscribed"]:
                break
        body = "x" * 32
        for label, rate, msgs in (("rated", args.rate, args.rate_msgs), ("max", 0, args.msgs)):
            await ws.ask({"cmd": "go"})
            s0 = server.stats()
            acks: list[asyncio.Future[dict[str, Any]]] = []
            t_start = now_ms()
            for i in range(msgs):
                if rate:
                    delay = t_start + i * 1000 / rate - now_ms()
                    if delay > 1:
                        await asyncio.sleep(delay / 1000)
                acks.append(w.request("p", {"p": "/" + path, "d": {"seq": i, "ts": now_ms(), "body": body}}))
                if not rate and i % 100 == 99:
                    await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*acks), 120)
            ack_s = (now_ms() - t_start) / 1000
            expected = out["subscribed"] * msgs
            last_count, last_change = -1, time.monotonic()
            while True:
                p = await ws.poll()
                if p["count"] >= expected:
                    break
                if p["count"] != last_count:
                    last_count, last_change = p["count"], time.monotonic()
                elif time.monotonic() - last_change > 10:
                    break
                await asyncio.sleep(0.05)
            got = await ws.ask({"cmd": "collect"})
            s1 = server.stats()
            delivered = sum(r["count"] for r in got)
            last = max((r["last"] for r in got if r["last"] is not None), default=t_start)
            lat = [x for r in got for x in r["lat"]]
            out[label] = {
                "rate": rate or "max", "msgs": msgs, "expected": expected, "delivered": delivered,
                "events_per_s": delivered / ((last - t_start) / 1000) if delivered else 0.0,
                "writes_acked_per_s": msgs / ack_s,
                "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "max_ms": max(lat, default=float("nan")),
                "server_cpu_s": s1["cpu_s"] - s0["cpu_s"], "subs_cpu_s": sum(r["cpu_s"] for r in got),
            }
            await asyncio.sleep(0.3)
        w.close()
    finally:
        ws.exit()
    return out


async def phase_conns(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    path = "conns/ping"
    w = await WireClient.open(server.port)
    await w.request("p", {"p": "/" + path, "d": {"seq": -1, "ts": now_ms()}})
    ws = Workers(args.workers, server.port)
    await asyncio.sleep(1.0)
    base = server.stats()
    out: dict[str, Any] = {"baseline_rss_mb": base["rss_mb"], "levels": []}
    opened = 0
    try:
        for level in args.conns:
            need = level - opened
            if need <= 0:
                continue
            t0 = time.perf_counter()
            rs = await ws.ask([{"cmd": "open", "n": n, "path": path, "batch": 25} for n in split(need, args.workers)])
            open_s = time.perf_counter() - t0
            opened += sum(r["ok"] for r in rs)
            failed = sum(r["failed"] for r in rs)
            await asyncio.sleep(args.hold_s)
            held = server.stats()
            await w.request("p", {"p": "/" + path, "d": {"seq": level, "ts": now_ms()}})
            deadline = time.monotonic() + 30
            while True:
                p = await ws.poll(level)
                if p["alive"] >= p["total"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            errors = [e for r in rs for e in r["errors"]][:3]
            out["levels"].append({
                "target": level, "opened": opened, "failed": failed, "open_s": open_s, "alive": p["alive"],
                "connected": p["connected"], "server_rss_mb": held["rss_mb"],
                "kb_per_conn": (held["rss_mb"] - base["rss_mb"]) * 1024 / max(1, opened),
                **({"errors": errors} if errors else {}),
            })
            if failed or p["alive"] < opened:
                break
    finally:
        ws.exit()
        w.close()
    return out


PHASES = {"write": phase_write, "fanout": phase_fanout, "conns": phase_conns}


def run_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.server_arg, args.server_wrap)
    try:
        return uvloop.run(PHASES[name](server, args))
    finally:
        stats = server.stats()
        threads = thread_cpu(server.proc.pid)
        server.stop()
        if args.verbose:
            print(f"   [{name}] server end rss {stats['rss_mb']:.0f} MB, cpu {stats['cpu_s']:.1f} s", file=sys.stderr)
            busiest = sorted(threads.items(), key=lambda kv: -kv[1])[:6]
            shown = ", ".join(f"{t} {s:.2f}" for t, s in busiest)
            print(f"   [{name}] CPU s by thread: {shown}", file=sys.stderr)


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def report(name: str, runs: list[dict[str, Any]]) -> None:
    def row(label: str, key: Callable[[dict[str, Any]], float], fmt: str) -> None:
        vals = [key(r) for r in runs]
        each = ", ".join(format(v, fmt) for v in vals)
        print(f"  {label:<44} {format(median(vals), fmt):>10}   ({each})")

    print(f"{name}: median of {len(runs)} run(s) (each run)")
    if name == "write":
        row("sequential put, acks/s", lambda r: r["sequential_per_s"], ",.0f")
        row("sequential put, ms each", lambda r: r["sequential_ms"], ".3f")
        row(f"pipelined put x{runs[0]['pipelined']}, acks/s", lambda r: r["pipelined_per_s"], ",.0f")
        row("pipelined: wall s", lambda r: r["pipelined_s"], ".2f")
        row("pipelined: server CPU s", lambda r: r["pipelined_server_cpu_s"], ".2f")
        row("pipelined: client CPU s", lambda r: r["pipelined_client_cpu_s"], ".2f")
        row("pipelined: failed", lambda r: r["pipelined_failed"], ".0f")
    elif name == "fanout":
        rated = runs[0]["rated"]
        row(f"@{rated['rate']} msg/s x{runs[0]['subs']} subs: p50 ms", lambda r: r["rated"]["p50_ms"], ".2f")
        row(f"@{rated['rate']} msg/s x{runs[0]['subs']} subs: p99 ms", lambda r: r["rated"]["p99_ms"], ".2f")
        row("  delivered %", lambda r: 100 * r["rated"]["delivered"] / r["rated"]["expected"], ".1f")
        row("  server CPU s", lambda r: r["rated"]["server_cpu_s"], ".2f")
        row("max rate: events/s delivered", lambda r: r["max"]["events_per_s"], ",.0f")
        row("max rate: writes acked/s", lambda r: r["max"]["writes_acked_per_s"], ",.0f")
        row("max rate: p50 ms", lambda r: r["max"]["p50_ms"], ".1f")
        row("max rate: p99 ms", lambda r: r["max"]["p99_ms"], ".1f")
        row("  delivered %", lambda r: 100 * r["max"]["delivered"] / r["max"]["expected"], ".1f")
        row("  server CPU s", lambda r: r["max"]["server_cpu_s"], ".2f")
        row("  subscriber processes CPU s", lambda r: r["max"]["subs_cpu_s"], ".2f")
    elif name == "conns":
        for i, level in enumerate(runs[0]["levels"]):
            ok = [r for r in runs if len(r["levels"]) > i]
            vals = [r["levels"][i] for r in ok]
            print(f"  {level['target']:>6} idle conns: KB/conn {median([v['kb_per_conn'] for v in vals]):.1f}"
                  f" ({', '.join(format(v['kb_per_conn'], '.1f') for v in vals)}); server RSS"
                  f" {median([v['server_rss_mb'] for v in vals]):.0f} MB; opened"
                  f" {[v['opened'] for v in vals]}; alive after a write {[v['alive'] for v in vals]};"
                  f" open {median([v['open_s'] for v in vals]):.1f} s")
            for v in vals:
                if v.get("errors"):
                    print(f"     errors: {v['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="write,fanout,conns")
    parser.add_argument("--runs", type=int, default=3, help="runs per phase (median reported)")
    parser.add_argument("--writes", type=int, default=2000, help="sequential puts")
    parser.add_argument("--pipelined", type=int, default=20000)
    parser.add_argument("--budget-s", type=float, default=60)
    parser.add_argument("--subs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="client processes for subscribers / idle conns")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--rate-msgs", type=int, default=1000)
    parser.add_argument("--msgs", type=int, default=2000, help="messages of the max-rate fan-out")
    parser.add_argument("--conns", default="5000,20000")
    parser.add_argument("--hold-s", type=float, default=3)
    parser.add_argument("--server-arg", action="append", default=[], help="extra `rtdb serve` argument")
    parser.add_argument("--server-wrap", default="", help="a command prefix for the server, e.g. a profiler")
    parser.add_argument("--json", help="also write every run's figures to this file")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    hard = raise_fd_limit()
    levels = [int(x) for x in args.conns.split(",") if x]
    # the limit is per process: `rtdb serve --workers N` spreads connections over N processes
    # (and the bench's --workers client processes share them out too)
    server_workers = 1
    for flag, value in zip(args.server_arg, args.server_arg[1:]):
        if flag == "--workers":
            server_workers = int(value)
    cap = (hard - 100) * min(server_workers, args.workers)
    if any(level > cap for level in levels):
        print(f"note: the file descriptor limit is {hard} (hard, per process) and cannot be raised here: idle"
              f" connection levels are capped at {cap}", file=sys.stderr)
    args.conns = [min(level, cap) for level in levels]
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    print(f"# rtdb realtime bench — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({cpu}), "
          f"Python {platform.python_version()}")
    results: dict[str, list[dict[str, Any]]] = {}
    for name in [p for p in args.phases.split(",") if p]:
        runs = []
        for i in range(args.runs):
            if args.verbose:
                print(f"   [{name}] run {i + 1}/{args.runs}", file=sys.stderr)
            runs.append(run_phase(name, args))
        results[name] = runs
        report(name, runs)
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
