"""REST streaming: ``GET /<path>.json`` with ``Accept: text/event-stream``.

Each stream is a :class:`~rtdb.realtime.hub.Listener` of the SSE transport's own
:class:`~rtdb.realtime.hub.Hub`, whose :class:`~rtdb.realtime.sse.SseRenderer`
words changes as ``put``/``patch`` events. The stream is registered before the
initial read, so no commit falls between the two; the initial ``put`` reflects the read, later
events the ChangeSets committed after it. A denied or invalid start answers the
usual JSON error and opens no stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rtdb.core.auth import Caller
from rtdb.core.errors import RtdbError
from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, to_plain
from rtdb.engine.engine import Engine
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.realtime.sse import AUTH_REVOKED, CANCEL, KEEP_ALIVE, SseRenderer, event
from rtdb.server.settings import Settings

log = logging.getLogger("rtdb.sse")

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"access-control-allow-origin", b"*"),
]


class SseEndpoint:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.hub = Hub(engine.feed, SseRenderer())
        self.callers: dict[Listener, Caller] = {}

    async def open(self, ns: str, path: Path, caller: Caller, query: QuerySpec | None) -> tuple[Listener, Node]:
        """Register and read; raises the engine's error (the caller answers it as JSON)."""

        async def refresh() -> tuple[Node, int]:
            result = await self.engine.read(ns, path, caller=caller, query=query)
            return result.node, result.seq

        outbox = Outbox(metrics=self.hub.metrics)

        def cancel(exc: RtdbError) -> None:  # its query window could not be read again
            outbox.send((CANCEL,))
            outbox.close()

        stream = Listener(ns, path, outbox, spec=query, refresh=refresh, on_cancel=cancel)
        self.hub.listen(stream)
        try:
            node, seq = await refresh()
        except BaseException:
            self.hub.unlisten(stream)
            raise
        stream.outbox.send((event("put", (), to_plain(node)),))
        self.hub.activate(stream, node, seq)
        return stream, node

    async def serve(self, stream: Listener, caller: Caller, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        self.callers[stream] = caller
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        deadline = time.monotonic() + self.settings.sse_max_lifetime_s
        try:
            while not disconnected.done():
                timeout = min(self.settings.sse_keepalive_s, max(deadline - time.monotonic(), 0))
                if caller.expires_at_ms is not None:
                    timeout = min(timeout, max((caller.expires_at_ms - self.engine.clock()) / 1000, 0))
                drain = asyncio.ensure_future(stream.outbox.drain())
                done, _ = await asyncio.wait({drain, disconnected}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if drain not in done:
                    drain.cancel()
                    if disconnected.done():
                        break
                    if caller.expires_at_ms is not None and self.engine.clock() >= caller.expires_at_ms:
                        await _send_text(send, AUTH_REVOKED)
                        break
                    if time.monotonic() >= deadline:
                        break
                    await _send_text(send, KEEP_ALIVE)
                    continue
                batch = drain.result()
                if not batch:  # closed: overflow (slow reader) or cancel
                    break
                await _send_text(send, "".join(text for frames in batch for text in frames))
        except OSError:
            pass
        finally:
            self.callers.pop(stream, None)
            disconnected.cancel()
            self.hub.unlisten(stream)
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except (OSError, RuntimeError):
                pass

    async def recheck(self, ns: str | None) -> None:
        """After rules change: cancel every stream (of ``ns``, or all) whose caller lost read access."""
        for stream, caller in list(self.callers.items()):
            if ns is not None and stream.ns != ns:
                continue
            try:
                allowed = await self.engine.check_read(stream.ns, stream.path, caller=caller, query=stream.spec)
            except Exception:
                log.exception("re-checking an SSE stream failed")
                allowed = False
            if not allowed:
                self.hub.unlisten(stream)
                stream.outbox.send((CANCEL,))
                stream.outbox.close()

    def drop(self, ns: str) -> None:
        """``ns`` was dropped: each of its streams gets ``put`` ``null`` and ends; the client
        reconnects and streams the new namespace."""
        for stream in list(self.callers):
            if stream.ns == ns:
                self.hub.unlisten(stream)
                stream.outbox.send((event("put", (), None),))
                stream.outbox.close()

    def end_streams(self, ns: str | None = None) -> None:
        """Finish every open stream (of ``ns``, or all: server shutdown); clients reconnect
        and get a fresh ``put``."""
        for stream in list(self.callers):
            if ns is None or stream.ns == ns:
                stream.outbox.close()

    def close(self) -> None:
        self.end_streams()
        self.hub.close()


async def _send_text(send: Any, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
