"""RedisBroker between nodes: ChangeSets/s from one publishing broker to the subscriber
callbacks of 1 and 3 other brokers (each its own process, as nodes are), and the
cross-broker latency at 200 ChangeSets/s. Medians of 3 runs. Needs Redis (--url).

    .venv/bin/python bench/broker_bench.py [--url redis://127.0.0.1:6379] [--count 50000]

Everything shares this machine's cores with Redis: the figures compare designs and track
regressions; they are no capacity claims.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from rtdb.core.changes import Change, ChangeSet, encode_changeset
from rtdb.realtime.redis_broker import RedisBroker

NS = "bench"


def changeset(seq: int, sent: float = 0.0) -> ChangeSet:
    """A chat message push (~200 bytes encoded); ``sent`` is the publisher's clock."""
    key = f"-N{seq:018d}"
    value = {"from": "user-1234", "text": "hello there, how is it going today?", "ts": 1733390000000 + seq,
             "sent": sent}
    return ChangeSet(NS, seq, "set", ("rooms", "r1", "messages", key),
                     (Change(("rooms", "r1", "messages", key), None, value),))


async def no_log(after: int) -> list[ChangeSet]:
    return []


def subscriber(url: str, prefix: str, count: int, pipe: Connection) -> None:
    """A node: receives ``count`` ChangeSets, then reports when (and the latencies)."""

    async def main() -> None:
        done = asyncio.get_running_loop().create_future()
        latencies: list[float] = []
        state = {"n": 0, "first": 0.0}

        def heard(c: ChangeSet) -> None:
            now = time.monotonic()
            if state["n"] == 0:
                state["first"] = now
            state["n"] += 1
            sent = c.changes[0].new["sent"]
            if sent:
                latencies.append(now - sent)
            if state["n"] == count and not done.done():
                done.set_result(now)

        broker = RedisBroker(url, prefix=prefix, gap_wait_s=30)
        broker.subscribe(NS, heard)
        await broker.start()
        pending = broker.open_namespace(NS)
        if pending is not None:
            await pending
        broker.start_namespace(NS, 0, no_log)
        cpu = time.process_time()
        pipe.send("ready")
        last = await done
        cpu = time.process_time() - cpu
        pipe.send((state["first"], last, cpu, latencies, broker.stats.skipped, broker.stats.reconnects))
        await broker.aclose()

    uvloop.run(main())


def redis_py_subscriber(url: str, prefix: str, count: int, pipe: Connection) -> None:
    """For comparison: the same node's receiving side on redis-py's asyncio PubSub."""
    import redis.asyncio

    from rtdb.core.ipc import BrokerChange, decode_broker

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(url)
        pubsub = client.pubsub()
        await pubsub.subscribe(f"{prefix}:ns:{NS}")
        cpu = time.process_time()
        pipe.send("ready")
        n, first, last = 0, 0.0, 0.0
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            decoded = decode_broker(message["data"])
            assert isinstance(decoded, BrokerChange)
            n += 1
            last = time.monotonic()
            first = first or last
            if n == count:
                break
        pipe.send((first, last, time.process_time() - cpu, [], 0, 0))
        await pubsub.aclose()
        await client.aclose()

    uvloop.run(main())


def spawn(url: str, prefix: str, count: int, n: int, target: Any = subscriber) -> tuple[list[Any], list[Connection]]:
    context = multiprocessing.get_context("spawn")
    processes, pipes = [], []
    for _ in range(n):
        parent, child = context.Pipe()
        process = context.Process(target=target, args=(url, prefix, count, child), daemon=True)
        process.start()
        processes.append(process)
        pipes.append(parent)
    for pipe in pipes:
        assert pipe.recv() == "ready"
    return processes, pipes


def collect(processes: list[Any], pipes: list[Connection]) -> list[Any]:
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join(10)
    return results


async def throughput(url: str, count: int, subscribers: int, target: Any = subscriber) -> tuple[float, float, float]:
    """ChangeSets/s delivered to each subscriber; publisher and subscriber CPU µs per ChangeSet."""
    prefix = f"bench-{secrets.token_hex(4)}"
    processes, pipes = spawn(url, prefix, count, subscribers, target)
    encoded = [(c, encode_changeset(c)) for c in (changeset(seq) for seq in range(1, count + 1))]
    async with RedisBroker(url, prefix=prefix) as publisher:
        start, cpu = time.monotonic(), time.process_time()
        for i in range(0, count, 64):  # a write group per turn of the loop, as the engine publishes
            for c, data in encoded[i : i + 64]:
                publisher.publish(c, data)
            await asyncio.sleep(0)
        results = await asyncio.to_thread(collect, processes, pipes)
        publish_cpu = time.process_time() - cpu
    assert all(r[4] == 0 for r in results), "commits were skipped"
    rate = statistics.median(count / (r[1] - start) for r in results)
    return rate, publish_cpu / count * 1e6, statistics.median(r[2] for r in results) / count * 1e6


async def latency(url: str, count: int, rate: float) -> tuple[float, float]:
    """p50 and p99 publish→callback latency in ms, one subscriber, ``rate`` ChangeSets/s."""
    prefix = f"bench-{secrets.token_hex(4)}"
    processes, pipes = spawn(url, prefix, count, 1)
    async with RedisBroker(url, prefix=prefix) as publisher:
        start = time.monotonic()
        for seq in range(1, count + 1):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            publisher.publish(changeset(seq, time.monotonic()))
        ((*_, latencies, _, _),) = await asyncio.to_thread(collect, processes, pipes)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1e3, latencies[int(len(latencies) * 0.99)] * 1e3


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379")
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--latency-count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = len(encode_changeset(changeset(1)))
    print(f"RedisBroker, {args.count} ChangeSets of {size} bytes, medians of {args.runs} runs\n")
    print(f"{'figure':<62} {'median':>12} {'runs':>28}")
    for n, target, name in ((1, subscriber, "broker"), (3, subscriber, "brokers"),
                            (1, redis_py_subscriber, "redis-py PubSub (reference)")):
        runs = [await throughput(args.url, args.count, n, target) for _ in range(args.runs)]
        for label, i, unit in ((f"ChangeSets/s to each of {n} subscribing {name}", 0, "/s"),
                               ("  publisher CPU per ChangeSet", 1, " µs"),
                               ("  subscriber CPU per ChangeSet", 2, " µs")):
            values = [r[i] for r in runs]
            shown = " ".join(f"{v:,.0f}" if i == 0 else f"{v:.1f}" for v in values)
            median = statistics.median(values)
            print(f"{label:<62} {(f'{median:,.0f}' if i == 0 else f'{median:.1f}') + unit:>12} {shown:>28}")
    runs_l = [await latency(args.url, args.latency_count, 200.0) for _ in range(args.runs)]
    for label, i in (("latency p50 at 200/s (ms)", 0), ("latency p99 at 200/s (ms)", 1)):
        values = [r[i] for r in runs_l]
        print(f"{label:<62} {statistics.median(values):>12.3f} {' '.join(f'{v:.3f}' for v in values):>28}")


if __name__ == "__main__":
    uvloop.run(main())
