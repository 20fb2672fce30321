"""What a WebSocket connection keeps of what its client sends (in-process, the native protocol)."""

from __future__ import annotations

import gc
import tracemalloc

from test_ws import endpoint  # noqa: F401  # the endpoint fixture of test_ws
from unit.server.wire_client import connect

from rtdb.server.ws import WsEndpoint


async def test_stats_messages_are_acknowledged_but_not_kept(endpoint: WsEndpoint) -> None:  # noqa: F811
    client = await connect(endpoint, admin=False)
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for batch in range(200):
            counters = {f"sdk.js.{batch}.{i}.{'x' * 40}": i for i in range(250)}  # 50,000 distinct names in all
            _, body = await client.call("s", {"c": counters})
            assert body["s"] == "ok"
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    await client.close()
    # kept, the 50,000 counters would take about 6 MB; a client could send them without end
    assert grown < 1_000_000, grown
