"""Rules cost on the write path: engine write rate with a realistic chat ruleset
(per-user paths, .validate on message fields, newData.hasChildren, auth.uid checks)
against open rules, and whether it stays flat as siblings grow. Prints figures.

Also: the cost of one ``Ruleset.can_write`` decision for a chat message on an
in-memory view (no storage), and the open rules with the chat ruleset's
``.indexOn`` (the store maintains that index on every write whatever the rules
say, so this baseline shows what evaluating the rules costs on its own).

    .venv/bin/python bench/rules_bench.py [--writes 20000] [--writers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from rtdb.core.auth import Caller
from rtdb.core.value import normalize
from rtdb.engine.access import RulesAccess
from rtdb.engine.engine import Engine
from rtdb.rules import Ruleset
from rtdb.rules.simulate import MemoryView

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


OPEN_WITH_INDEX = """{
  "rules": {".read": true, ".write": true, "rooms": {"$room": {"messages": {".indexOn": ["ts"]}}}}
}"""
AUTH = {"uid": "alice", "provider": "password", "token": {"sub": "alice"}}


def decision_us(rules: Ruleset, siblings: int = 100) -> float:
    """µs per ``can_write`` of a chat message into a room of ``siblings`` messages (best of 5)."""
    messages = {f"m{i:07d}": {"uid": "alice", "text": f"hello {i}", "ts": 1} for i in range(siblings)}
    view = MemoryView(normalize({"rooms": {"lobby": {"messages": messages}}}))
    path = ("rooms", "lobby", "messages", "m9999999")
    node = normalize({"uid": "alice", "text": "hello there", "ts": 1_700_000_000_000})
    now = 1_800_000_000_000

    def decide() -> None:
        rules.can_write(path, node, auth=AUTH, root=view, now=now)

    assert rules.can_write(path, node, auth=AUTH, root=view, now=now).allowed
    n = 20_000
    return min(timeit.repeat(decide, number=n, repeat=5)) / n * 1e6


async def run(rules: Ruleset, writes: int, writers: int, window: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp), access=RulesAccess(rules), synchronous="NORMAL")
        caller = Caller(auth=AUTH)
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
        return [window / (b - a) for a, b in itertools.pairwise(marks)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--window", type=int, default=2_000)
    args = parser.parse_args()
    import uvloop

    chat, open_rules = Ruleset.compile(CHAT_RULES), Ruleset.open()
    print(f"one can_write decision (in-memory view): chat ruleset {decision_us(chat):.2f} µs, "
          f"open rules {decision_us(open_rules):.2f} µs")
    results = {}
    runs = [("open rules", open_rules), ("open + index", Ruleset.compile(OPEN_WITH_INDEX)), ("chat ruleset", chat)]
    for name, rules in runs:
        rates = uvloop.run(run(rules, args.writes, args.writers, args.window))
        results[name] = rates
        print(f"{name:13} median {statistics.median(rates):8.0f} writes/s; first {args.window}: {rates[0]:8.0f}/s, "
              f"last {args.window}: {rates[-1]:8.0f}/s (last/first {rates[-1] / rates[0]:.2f})")
    chat_rate = statistics.median(results["chat ruleset"])
    ratio = chat_rate / statistics.median(results["open rules"])
    print(f"chat ruleset / open rules = {ratio:.2f} (synchronous=normal, {args.writers} concurrent writers, "
          f"{args.writes} messages into one room)")
    indexed = chat_rate / statistics.median(results["open + index"])
    print(f"chat ruleset / open rules with the same .indexOn = {indexed:.2f} (the rules' own cost)")


if __name__ == "__main__":
    main()
