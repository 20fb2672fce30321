"""Helpers for the SDK's end-to-end tests: event accumulators that wait for exact
counts (never sleep), and a server-round-trip barrier."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any

import rtdb_sdk

_ns = itertools.count(1)


def fresh_ns(prefix: str = "sdk") -> str:
    return f"{prefix}-{os.getpid()}-{next(_ns)}"


class Events:
    """A callback that records what it is called with; ``await wait(n)`` waits until
    ``n`` calls arrived and checks that no more did."""

    def __init__(self, render: Callable[..., Any] | None = None) -> None:
        self.items: list[Any] = []
        self._render = render or _default_render
        self._changed = asyncio.Event()

    def __call__(self, *args: Any) -> None:
        self.items.append(self._render(*args))
        self._changed.set()

    async def wait(self, n: int, timeout: float = 10.0) -> list[Any]:
        await self._reach(lambda items: len(items) >= n, timeout, f"waited for {n} events")
        assert len(self.items) == n, f"expected exactly {n} events, got {len(self.items)}: {self.items!r}"
        return self.items

    async def wait_until(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
        await self._reach(predicate, timeout, "condition not reached")
        return self.items

    async def _reach(self, predicate: Callable[[list[Any]], bool], timeout: float, what: str) -> None:
        async def reach() -> None:
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reach(), timeout)
        except TimeoutError:
            raise AssertionError(f"{what}; got {len(self.items)} events: {self.items!r}") from None


def _default_render(*args: Any) -> Any:
    snap = args[0]
    if len(args) == 1:
        return snap.val()
    return (snap.key, snap.val(), args[1])


def child_render(kind: str) -> Callable[..., Any]:
    def render(snap: rtdb_sdk.DataSnapshot, prev: str | None = None) -> Any:
        return (kind, snap.key, snap.val(), prev)

    return render


async def barrier(db: rtdb_sdk.Database) -> None:
    """Every push the server sent this client before now has been applied."""
    await db.reference("_barrier").set(True)
