"""The bounded per-connection send queue.

Fan-out never waits for a socket: it appends already-encoded frames to the
connection's :class:`Outbox` and moves on. The connection's writer task drains
it. When a consumer falls too far behind, the outbox overflows: it is closed,
its ``on_overflow`` callback disconnects the client (which resyncs on
reconnect) and the overflow is counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Frames = tuple[str, ...]

DEFAULT_MAX_MESSAGES = 20_000
DEFAULT_MAX_CHARS = 64 * 1024 * 1024


@dataclass(slots=True)
class RealtimeMetrics:
    """Counters of the realtime layer (exported by the server's metrics)."""

    overflow_disconnects: int = 0
    messages_queued: int = 0
    payloads_encoded: int = 0
    window_refreshes: int = 0


class Outbox:
    __slots__ = ("_queue", "_chars", "_max_messages", "_max_chars", "_ready", "_closed", "_on_overflow", "_metrics")

    def __init__(
        self,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_chars: int = DEFAULT_MAX_CHARS,
        on_overflow: Callable[[], None] | None = None,
        metrics: RealtimeMetrics | None = None,
    ) -> None:
        self._queue: deque[Frames] = deque()
        self._chars = 0
        self._max_messages = max_messages
        self._max_chars = max_chars
        self._ready = asyncio.Event()
        self._closed = False
        self._on_overflow = on_overflow
        self._metrics = metrics if metrics is not None else RealtimeMetrics()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, frames: Frames) -> bool:
        """Queue one message (its frames). ``False`` if the outbox is closed or just overflowed."""
        if self._closed:
            return False
        size = sum(len(f) for f in frames)
        if len(self._queue) >= self._max_messages or self._chars + size > self._max_chars:
            self._metrics.overflow_disconnects += 1
            self.discard()
            if self._on_overflow is not None:
                self._on_overflow()
            return False
        self._queue.append(frames)
        self._chars += size
        self._metrics.messages_queued += 1
        self._ready.set()
        return True

    async def drain(self) -> list[Frames]:
        """Wait for queued messages and take them all; ``[]`` once closed and empty."""
        while not self._queue:
            if self._closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._queue)
        self._queue.clear()
        self._chars = 0
        return batch

    def close(self) -> None:
        """Stop accepting messages; the writer drains what is queued (unless discarded) and stops."""
        self._closed = True
        self._ready.set()

    def discard(self) -> None:
        self._queue.clear()
        self._chars = 0
        self.close()
