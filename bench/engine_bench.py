"""Engine write throughput: concurrent writers through group commit, and whether the
rate stays flat as siblings grow. Prints figures; asserts nothing.

    .venv/bin/python bench/engine_bench.py [--writes 100000] [--writers 64] [--sync FULL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rtdb.core.auth import ADMIN
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine


async def run(writes: int, writers: int, sync: str, window: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp), access=RulesAccess(default_rules(emulator=False)), synchronous=sync)
        value = {"name": "user", "score": 42, "active": True}
        done = 0
        marks: list[float] = []
        t0 = time.perf_counter()

        async def writer(w: int) -> None:
            nonlocal done
            i = w
            while i < writes:
                await engine.set("bench", ("items", f"k{i:07d}"), value, caller=ADMIN)
                done += 1
                if done % window == 0:
                    marks.append(time.perf_counter())
                i += writers

        await asyncio.gather(*[writer(w) for w in range(writers)])
        total = time.perf_counter() - t0
        store = await engine.store("bench")
        rates = [window / (b - a) for a, b in zip([t0, *marks], marks)]
        print(f"engine writes: {writes} small sets, {writers} concurrent writers, synchronous={sync}")
        print(f"  overall        {writes / total:10.0f} writes/s")
        print(f"  first {window:>6}   {rates[0]:10.0f} writes/s")
        print(f"  last  {window:>6}   {rates[-1]:10.0f} writes/s   (last/first = {rates[-1] / rates[0]:.2f})")
        print(f"  median window  {statistics.median(rates):10.0f} writes/s")
        print(f"  batches {store.stats.batches}, mean batch {store.stats.ops / store.stats.batches:.1f}, "
              f"largest {store.stats.largest_batch}")
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--sync", default="FULL")
    parser.add_argument("--window", type=int, default=10_000)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args.writes, args.writers, args.sync.upper(), args.window))


if __name__ == "__main__":
    main()
