"""The bounded per-connection send queue.

Fan-out never waits for a socket: it appends already-encoded frames to the
connection's :class:`Outbox` and moves on. The connection's writer task drains
it. When a consumer falls too far behind, the outbox overflows: it is closed,
its ``on_overflow`` callback disconnects the client (which resyncs on
reconnect) and the overflow is counted.
"""

from __future__ import annotations

import asyncio
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
    """Frames queued for one connection. A transport either awaits :meth:`drain` or sets
    ``on_ready``, which is called (synchronously) when the outbox goes from empty to
    non-empty and when it closes, and then takes the queued messages with :meth:`take`."""

    __slots__ = (
        "_chars",
        "_closed",
        "_max_chars",
        "_max_messages",
        "_metrics",
        "_on_overflow",
        "_queue",
        "_ready",
        "on_ready",
    )

    def __init__(
        self,
        *,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_chars: int = DEFAULT_MAX_CHARS,
        on_overflow: Callable[[], None] | None = None,
        metrics: RealtimeMetrics | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self._queue: list[Frames] = []
        self._chars = 0
        self._max_messages = max_messages
        self._max_chars = max_chars
        self._ready: asyncio.Event | None = None  # made by the first drain()
        self._closed = False
        self._on_overflow = on_overflow
        self._metrics = metrics if metrics is not None else RealtimeMetrics()
        self.on_ready = on_ready

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def send(self, frames: Frames) -> bool:
        """Queue one message (its frames). ``False`` if the outbox is closed or just overflowed."""
        if self._closed:
            return False
        size = len(frames[0]) if len(frames) == 1 else sum(map(len, frames))
        queue = self._queue
        if len(queue) >= self._max_messages or self._chars + size > self._max_chars:
            self._metrics.overflow_disconnects += 1
            self.discard()
            if self._on_overflow is not None:
                self._on_overflow()
            return False
        queue.append(frames)
        self._chars += size
        self._metrics.messages_queued += 1
        if len(queue) == 1:
            self._wake()
        return True

    def take(self) -> list[Frames]:
        """Every queued message, oldest first; the outbox is then empty."""
        batch = self._queue
        if batch:
            self._queue = []
            self._chars = 0
        return batch

    async def drain(self) -> list[Frames]:
        """Wait for queued messages and take them all; ``[]`` once closed and empty."""
        while not self._queue:
            if self._closed:
                return []
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def close(self) -> None:
        """Stop accepting messages; the writer drains what is queued (unless discarded) and stops."""
        if not self._closed:
            self._closed = True
            self._wake()

    def discard(self) -> None:
        self._queue = []
        self._chars = 0
        self.close()

    def _wake(self) -> None:
        if self._ready is not None:
            self._ready.set()
        if self.on_ready is not None:
            self.on_ready()
