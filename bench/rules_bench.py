"""Rules cost on the write path: engine write rate with a realistic chat ruleset
(per-user paths, .validate on message fields, newData.hasChildren, auth.uid checks)
against open rules, and whether it stays flat as siblings grow. Prints figures.

    .venv/bin/python bench/rules_bench.py [--writes 20000] [--writers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from rtdb.core.auth import Caller
from rtdb.engine.access import RulesAccess
from rtdb.engine.engine import Engine
from rtdb.rules import Ruleset

CHAT_RULES = """{
  "rules": {
    "users": {
      "$uid": {
        ".read": "auth != null && auth.uid === $uid",
        ".write": "auth != null && auth.uid === $uid"
      }
    },
    "rooms": {
      "$room": {
        ".read": "auth != null",
        "messages": {
          ".indexOn": ["ts"],
          "$msg": {
            ".write": "auth != null && (!data.exists() || data.child('uid').val() === auth.uid)",
            ".validate": "newData.hasChildren(['uid', 'text', 'ts']) && newData.child('uid').val() === auth.uid",
            "text": { ".validate": "newData.isString() && newData.val().length > 0 && newData.val().length <= 500" },
            "ts": { ".validate": "newData.isNumber() && newData.val() <= now" },
            "uid": { ".validate": "newData.isString()" },
            "$other": { ".validate": false }
          }
        }
      }
    }
  }
}"""


async def run(rules: Ruleset, writes: int, writers: int, window: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp), access=RulesAccess(rules), synchronous="NORMAL")
        caller = Caller(auth={"uid": "alice", "provider": "password", "token": {"sub": "alice"}})
        await engine.store("bench")
        done = 0
        marks = [time.perf_counter()]

        async def writer(w: int) -> None:
            nonlocal done
            for i in range(w, writes, writers):
                await engine.set("bench", ("rooms", "lobby", "messages", f"m{i:07d}"),
                                 {"uid": "alice", "text": f"hello {i}", "ts": 1_700_000_000_000},
                                 caller=caller)
                done += 1
                if done % window == 0:
                    marks.append(time.perf_counter())

        await asyncio.gather(*[writer(w) for w in range(writers)])
        await engine.close()
        return [window / (b - a) for a, b in zip(marks, marks[1:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--window", type=int, default=2_000)
    args = parser.parse_args()
    import uvloop

    results = {}
    for name, rules in [("open rules", Ruleset.open()), ("chat ruleset", Ruleset.compile(CHAT_RULES))]:
        rates = uvloop.run(run(rules, args.writes, args.writers, args.window))
        results[name] = rates
        print(f"{name:13} median {statistics.median(rates):8.0f} writes/s; first {args.window}: {rates[0]:8.0f}/s, "
              f"last {args.window}: {rates[-1]:8.0f}/s (last/first {rates[-1] / rates[0]:.2f})")
    ratio = statistics.median(results["chat ruleset"]) / statistics.median(results["open rules"])
    print(f"chat ruleset / open rules = {ratio:.2f} (synchronous=normal, {args.writers} concurrent writers, "
          f"{args.writes} messages into one room)")


if __name__ == "__main__":
    main()
