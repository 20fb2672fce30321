"""The fan-out's own cost, in process (no sockets): how long the hub takes to turn one
committed ChangeSet into outbox messages for many listeners. Prints figures; asserts
nothing.

    .venv/bin/python bench/hub_bench.py                  # 200 listeners, median of 3 runs
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/hub_bench.py   # A/B

Cases: ``ws-same`` (every WebSocket listener at the written path: one shared ``d``
push), ``ws-children`` (one listener per child, an update of 10 children: one message
per listener path), ``sse-same`` (SSE streams at the written path). Outboxes are
emptied after each ChangeSet, inside the timing, equally for every case. Time is this
process's CPU time (it runs on one thread), which other load on a shared machine
disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from rtdb.core.changes import Change, ChangeSet
from rtdb.realtime.broker import InProcessBroker
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox

NS = "bench"

try:  # this checkout: one Hub, a renderer per transport
    from rtdb.realtime.sse import SseRenderer
    from rtdb.realtime.wire import WireRenderer

    def ws_hub(broker: InProcessBroker) -> Any:
        return Hub(broker, WireRenderer())

    def sse_hub(broker: InProcessBroker) -> Any:
        return Hub(broker, SseRenderer())

    def add_sse(hub: Any, path: tuple[str, ...], outbox: Outbox) -> None:
        listener = hub.listen(Listener(NS, path, outbox))
        hub.activate(listener, None, 0)

except ImportError:  # older checkouts: Hub for WebSocket, SseFanout for SSE
    from rtdb.realtime.sse import SseFanout, SseStream  # type: ignore[attr-defined]

    def ws_hub(broker: InProcessBroker) -> Any:
        return Hub(broker)  # type: ignore[call-arg]

    def sse_hub(broker: InProcessBroker) -> Any:
        return SseFanout(broker)

    def add_sse(hub: Any, path: tuple[str, ...], outbox: Outbox) -> None:
        stream = SseStream(NS, path, outbox)
        hub.add(stream)
        hub.activate(stream, None, 0)


def add_ws(hub: Any, path: tuple[str, ...], outbox: Outbox) -> None:
    listener = hub.listen(Listener(NS, path, outbox))
    hub.activate(listener, None, 0)


def run_case(name: str, listeners: int, changesets: int) -> float:
    """Microseconds per ChangeSet."""
    broker = InProcessBroker()
    outboxes = [Outbox() for _ in range(listeners)]
    body = "x" * 32
    make: Callable[[int], ChangeSet]
    if name == "ws-children":
        hub = ws_hub(broker)
        for i, outbox in enumerate(outboxes):
            add_ws(hub, ("room", f"c{i:04d}"), outbox)

        def make(seq: int) -> ChangeSet:
            step = max(1, listeners // 10)
            changes = tuple(Change(("room", f"c{i:04d}", "n"), seq - 1, seq) for i in range(0, listeners, step))
            return ChangeSet(NS, seq, "update", ("room",), changes)
    else:
        hub = ws_hub(broker) if name == "ws-same" else sse_hub(broker)
        add = add_ws if name == "ws-same" else add_sse
        for outbox in outboxes:
            add(hub, ("fanout", "latest"), outbox)

        def make(seq: int) -> ChangeSet:
            path = ("fanout", "latest")
            return ChangeSet(NS, seq, "set", path, (Change(path, None, {"seq": seq, "ts": seq, "body": body}),))

    sets = [make(seq) for seq in range(1, changesets + 1)]
    t0 = time.process_time()
    for changeset in sets:
        broker.publish(changeset)
        for outbox in outboxes:
            outbox.take()
    elapsed = time.process_time() - t0
    hub.close()
    return elapsed / changesets * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", type=int, default=200)
    parser.add_argument("--changesets", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="ws-same,ws-children,sse-same")
    args = parser.parse_args()
    print(f"# hub bench: {args.listeners} listeners, {args.changesets} ChangeSets, median of {args.runs} runs")
    for name in args.cases.split(","):
        runs = [run_case(name, args.listeners, args.changesets) for _ in range(args.runs)]
        each = ", ".join(f"{r:.1f}" for r in runs)
        print(f"  {name:<12} {statistics.median(runs):8.1f} µs CPU per ChangeSet, min {min(runs):.1f}   ({each})")


if __name__ == "__main__":
    main()
