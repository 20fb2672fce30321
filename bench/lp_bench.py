"""Long-polling (/.lp) beside WebSocket (/.ws) against real `rtdb serve --emulator`
subprocesses. Prints figures; asserts nothing.

    .venv/bin/python bench/lp_bench.py                 # 3 runs of every phase
    .venv/bin/python bench/lp_bench.py --runs 1 --subs 20

Phases (each run starts a fresh server on a free loopback port):

* ``write``  — one client, sequential awaited puts: writes/s over LP and over WS.
* ``fanout`` — ``--subs`` listeners on ``fan/latest`` (all LP, then all WS); one WS
  writer sets ``{seq, ts}`` at ``--rate`` msg/s for ``--seconds``; write→event
  latency p50/p99 (client clock = server clock: one machine).
* ``idle``   — server RSS (VmRSS of the server and its children) with 0 and then
  ``--idle`` idle sessions (LP: each holding one poll; WS: one open socket each);
  growth per session.

The LP client is tests/e2e/lp_client.py (httpx, threads); the WS client is
bench/realtime_bench.py's WireClient.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "e2e")]

from lp_client import LPClient  # noqa: E402
from realtime_bench import NS, Server, WireClient, now_ms, pct  # noqa: E402


class TimedLP(LPClient):
    """Records the arrival time of every push carrying a ``ts``."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.latencies: list[float] = []
        self.seen = 0

    def _take(self, ans: Any) -> None:
        super()._take(ans)
        t = now_ms()
        with self.cond:
            new, self.seen = self.messages[self.seen:], len(self.messages)
        for m in new:
            d = m.get("d", {})
            if m.get("t") == "d" and d.get("a") == "d" and isinstance(d["b"].get("d"), dict) \
                    and "ts" in d["b"]["d"]:
                self.latencies.append(t - d["b"]["d"]["ts"])


def lp_client(port: int, cls: type[LPClient] = LPClient) -> LPClient:
    c = cls(f"http://127.0.0.1:{port}", NS, timeout=60)
    c.start()
    c.run()
    return c


async def phase_write(server: Server, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    c = lp_client(server.port)

    def lp_writes() -> float:
        for i in range(20):
            c.request("p", {"p": f"/warm/{i}", "d": i})
        t0 = time.perf_counter()
        for i in range(args.writes):
            assert c.request("p", {"p": f"/lp/k{i}", "d": {"i": i}})["s"] == "ok"
        return args.writes / (time.perf_counter() - t0)

    out["lp_writes_per_s"] = await asyncio.to_thread(lp_writes)
    c.close()
    w = await WireClient.open(server.port)
    for i in range(20):
        await w.request("p", {"p": f"/warm/{i}", "d": i})
    t0 = time.perf_counter()
    for i in range(args.writes):
        assert (await w.request("p", {"p": f"/ws/k{i}", "d": {"i": i}}))["s"] == "ok"
    out["ws_writes_per_s"] = args.writes / (time.perf_counter() - t0)
    w.close()
    return out


async def _drive(writer: WireClient, args: argparse.Namespace) -> None:
    n = int(args.rate * args.seconds)
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.send("p", {"p": "/fan/latest", "d": {"seq": i, "ts": now_ms()}})
    await asyncio.sleep(2)


async def phase_fanout(server: Server, args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    subs = [lp_client(server.port, TimedLP) for _ in range(args.subs)]
    await asyncio.gather(*(asyncio.to_thread(s.request, "q", {"p": "/fan/latest", "h": ""}) for s in subs))
    for s in subs:
        s.latencies.clear()  # type: ignore[attr-defined]
    writer = await WireClient.open(server.port)
    await _drive(writer, args)
    lat = [x for s in subs for x in s.latencies]  # type: ignore[attr-defined]
    expected = args.subs * int(args.rate * args.seconds)
    out.update(lp_p50_ms=pct(lat, 0.5), lp_p99_ms=pct(lat, 0.99), lp_delivered=len(lat) / expected)
    for s in subs:
        s.close()

    ws_lat: list[float] = []

    def on_push(d: dict[str, Any]) -> None:
        v = d.get("b", {}).get("d")
        if isinstance(v, dict) and "ts" in v:
            ws_lat.append(now_ms() - v["ts"])

    ws_subs = [await WireClient.open(server.port, on_push) for _ in range(args.subs)]
    await asyncio.gather(*(w.request("q", {"p": "/fan/latest", "h": ""}) for w in ws_subs))
    ws_lat.clear()
    await _drive(writer, args)
    out.update(ws_p50_ms=pct(ws_lat, 0.5), ws_p99_ms=pct(ws_lat, 0.99), ws_delivered=len(ws_lat) / expected)
    for w in ws_subs:
        w.close()
    writer.close()
    return out


async def _settled_rss(server: Server) -> float:
    await asyncio.sleep(2)
    return server.stats()["rss_mb"]


async def phase_idle(server: Server, args: argparse.Namespace) -> dict[str, float]:
    base = await _settled_rss(server)
    lps = await asyncio.gather(*(asyncio.to_thread(lp_client, server.port) for _ in range(args.idle)))
    with_lp = await _settled_rss(server)
    for c in lps:
        c.close()
    await asyncio.sleep(1)
    base_ws = await _settled_rss(server)
    ws = [await WireClient.open(server.port) for _ in range(args.idle)]
    with_ws = await _settled_rss(server)
    for w in ws:
        w.close()
    return {"rss_base_mb": base, "lp_kb_per_session": (with_lp - base) * 1024 / args.idle,
            "ws_kb_per_session": (with_ws - base_ws) * 1024 / args.idle}


PHASES = {"write": phase_write, "fanout": phase_fanout, "idle": phase_idle}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--phases", default="write,fanout,idle")
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--subs", type=int, default=100)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--idle", type=int, default=200)
    args = ap.parse_args()
    threading.stack_size(512 * 1024)
    for name in args.phases.split(","):
        runs = []
        for _ in range(args.runs):
            server = Server([])
            try:
                runs.append(asyncio.run(PHASES[name](server, args)))
            finally:
                server.stop()
        print(f"== {name} (median of {len(runs)}; min–max)")
        for key in runs[0]:
            vals = [r[key] for r in runs]
            print(f"  {key:22s} {statistics.median(vals):10.2f}   ({min(vals):.2f}–{max(vals):.2f})")


if __name__ == "__main__":
    main()
