"""Python SDK benchmark: pipelined writes, incoming events applied to the mirror, local reads.

    .venv/bin/python bench/sdk_bench.py [--url http://127.0.0.1:9000] [-n 20000]

Without ``--url`` it starts ``rtdb serve --emulator`` on a free port with a
temporary data directory. Prints:

* pipelined writes/s: one client issues N ``set()`` calls without waiting, then
  waits for every acknowledgement (local apply + send + server commit + ack);
  also against a stand-in socket that acknowledges at once (the client's own cost);
* incoming events/s: the frames a client received for N child writes by another
  client (recorded from the socket) are replayed into a fresh client that has a
  ``child_added`` listener — decoding, sync tree, views, events, callbacks; the
  end-to-end rate (bounded by the server) is printed too;
* local read latency: median ``await ref.get()`` served from the mirror.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from server_process import free_port, start_serve, stop, wait_healthy

import rtdb_sdk
from rtdb_sdk.transport import Socket, websocket_transport


class RecordingSocket:
    def __init__(self, inner: Socket, frames: list[str]) -> None:
        self._inner = inner
        self.frames = frames

    async def send(self, frame: str) -> None:
        await self._inner.send(frame)

    async def recv(self) -> str:
        frame = await self._inner.recv()
        self.frames.append(frame)
        return frame

    async def close(self) -> None:
        await self._inner.close()


class ReplaySocket:
    """Gives back recorded frames as fast as the client takes them."""

    def __init__(self, frames: list[str]) -> None:
        self._frames = iter(frames)
        self.done = asyncio.Event()

    async def send(self, frame: str) -> None:
        pass

    async def recv(self) -> str:
        try:
            return next(self._frames)
        except StopIteration:
            self.done.set()
            await asyncio.Event().wait()
            raise ConnectionError("replay over") from None

    async def close(self) -> None:
        pass


class AckingSocket:
    """A server stand-in that acknowledges every request at once (client-side cost only)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queue.put_nowait('{"t":"c","d":{"t":"h","d":{"ts":0,"v":"5","h":"local","s":"s1"}}}')

    async def send(self, frame: str) -> None:
        start = frame.find('"r":')
        if start >= 0:
            r = frame[start + 4 : frame.index(",", start)]
            self._queue.put_nowait('{"t":"d","d":{"r":' + r + ',"b":{"s":"ok","d":""}}}')

    async def recv(self) -> str:
        return await self._queue.get()

    async def close(self) -> None:
        pass


async def bench_client_writes(n: int) -> float:
    async def acking(u: str, headers: Mapping[str, str]) -> Socket:
        return AckingSocket()

    async with rtdb_sdk.connect("http://local?ns=bench", transport=acking) as db:
        await db.wait_connected()
        ref = db.reference("bench/writes")
        start = time.perf_counter()
        await asyncio.gather(*(ref.child(str(i)).set({"i": i, "text": "hello"}) for i in range(n)))
        return n / (time.perf_counter() - start)


async def bench_writes(url: str, n: int) -> float:
    async with rtdb_sdk.connect(url) as db:
        ref = db.reference("bench/writes")
        await ref.child("warmup").set(0)
        start = time.perf_counter()
        writes = [ref.child(str(i)).set({"i": i, "text": "hello"}) for i in range(n)]
        await asyncio.gather(*writes)
        return n / (time.perf_counter() - start)


def _counter(n: int) -> tuple[Callable[[Any, str | None], None], asyncio.Event]:
    """A child_added callback and the event it sets at the ``n``-th call."""
    done = asyncio.Event()
    got = 0

    def on_added(_snap: Any, _prev: str | None) -> None:
        nonlocal got
        got += 1
        if got == n:
            done.set()

    return on_added, done


async def bench_events(url: str, n: int) -> tuple[float, float]:
    frames: list[str] = []

    async def recording(u: str, headers: Mapping[str, str]) -> Socket:
        return RecordingSocket(await websocket_transport(u, headers), frames)

    on_added, all_in = _counter(n)

    async with rtdb_sdk.connect(url, transport=recording) as reader, rtdb_sdk.connect(url) as writer:
        ref = reader.reference("bench/events")
        ref.on_child_added(on_added)
        await reader.reference("bench/sync").set(1)
        start = time.perf_counter()
        target = writer.reference("bench/events")
        await asyncio.gather(*(target.push({"i": i, "text": "event"}) for i in range(n)))
        await asyncio.wait_for(all_in.wait(), 120)
        end_to_end = n / (time.perf_counter() - start)

    replay = ReplaySocket(frames)
    count, finished = _counter(n)

    async def replaying(u: str, headers: Mapping[str, str]) -> Socket:
        return replay

    db = rtdb_sdk.Database(url, transport=replaying)
    db.reference("bench/events").on_child_added(count)
    start = time.perf_counter()
    await db.start()
    await asyncio.wait_for(finished.wait(), 120)
    applied = n / (time.perf_counter() - start)
    await db.close()
    return applied, end_to_end


async def bench_reads(url: str, n: int) -> tuple[float, float]:
    async with rtdb_sdk.connect(url) as db:
        ref = db.reference("bench/reads")
        await ref.set({f"k{i}": {"i": i} for i in range(1000)})
        ready = asyncio.Event()
        ref.on_value(lambda _s: ready.set())
        await ready.wait()
        samples = []
        for i in range(n):
            child = ref.child(f"k{i % 1000}")
            t = time.perf_counter_ns()
            snap = await child.get()
            samples.append(time.perf_counter_ns() - t)
            assert snap.val() == {"i": i % 1000}
        start = time.perf_counter_ns()
        for i in range(n):
            db._repo.tree.visible(("bench", "reads", f"k{i % 1000}"))
        tree_ns = (time.perf_counter_ns() - start) / n
        return statistics.median(samples) / 1000, tree_ns / 1000


def start_server() -> tuple[subprocess.Popen[bytes], str, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory()
    port = free_port()
    proc = start_serve(port, tmp.name, ["--emulator", "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, base, tmp


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running rtdb (default: start one)")
    parser.add_argument("-n", type=int, default=20000, help="writes / events per measurement")
    args = parser.parse_args()
    proc = tmp = None
    base = args.url
    if base is None:
        proc, base, tmp = start_server()
    try:
        ns = f"bench-{os.getpid()}"
        url = f"{base}?ns={ns}"
        writes = await bench_writes(url, args.n)
        print(f"pipelined writes/s to rtdb serve (one client, {args.n} sets, all acked): {writes:,.0f}")
        client = await bench_client_writes(args.n)
        print(f"pipelined writes/s, client side only (a socket that acks at once): {client:,.0f}")
        applied, end_to_end = await bench_events(url, args.n)
        print(f"incoming events/s applied to the mirror (replayed frames, child_added listener): {applied:,.0f}")
        print(f"incoming events/s end to end (another client's {args.n} pushes via the server): {end_to_end:,.0f}")
        read_us, tree_us = await bench_reads(url, 5000)
        print(
            f"local read latency from the mirror: await ref.get() median {read_us:.1f} µs;"
            f" sync tree read {tree_us:.2f} µs"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
