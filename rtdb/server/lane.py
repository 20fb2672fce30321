"""The lane of a WebSocket connection: its requests take effect and are answered in order.

Consecutive writes (``p``/``m``) start together, so one group commit can take a client's
whole pipeline, and are acknowledged in arrival order. Any other request that needs I/O
(listen, get, onDisconnect) waits until everything before it is answered, and everything
after it waits for it. A request that needs no I/O is answered at once when nothing is
ahead of it. Once :data:`MAX_IN_FLIGHT` requests are unanswered the lane asks its owner
to stop reading, and to resume at half.

A write's coroutine is stepped here, eagerly, rather than by a Task: its first step
(validation up to handing the write to the store) runs as the request arrives, and it
resumes straight from the awaited future's callback (:func:`resume_when_done`), which
saves most of what a Task costs per write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from rtdb.protocol import messages as m

log = logging.getLogger("rtdb.ws")

MAX_IN_FLIGHT = 1024
"""Requests of one connection queued or running before it stops reading (resumes at half)."""

WRITES = (m.Put, m.Merge)
ASYNC = (m.Listen, m.Get, m.Put, m.Merge, m.OnDisconnectPut, m.OnDisconnectMerge, m.OnDisconnectCancel)
"""The requests that need I/O; any other one is answered by :meth:`LaneOwner.answer_now`."""
_GATE = object()
"""The request of a lane entry that holds later requests back (:meth:`Lane.gate`)."""


def resume_when_done(awaited: object, callback: Callable[[Any], object]) -> bool:
    """Take over what a coroutine yielded, as an asyncio Task would: when it is an asyncio
    future the coroutine awaits, clear its blocking flag, have ``callback(future)`` called
    once it is done, and return ``True``; ``False`` for anything else (a bare ``yield``).

    This relies on a private convention of asyncio (``Future.__await__`` sets
    ``_asyncio_future_blocking`` before yielding itself, and a Task clears it); the tests
    of this function fail if Python changes it."""
    if getattr(awaited, "_asyncio_future_blocking", None):
        awaited._asyncio_future_blocking = False  # type: ignore[attr-defined]
        awaited.add_done_callback(callback)  # type: ignore[attr-defined]
        return True
    return False


class LaneOwner(Protocol):
    """What runs and answers the requests of a lane (the connection's request handling)."""

    def answer_now(self, request: m.ClientRequest) -> None:
        """Handle a request that needs no I/O (it responds itself)."""

    def write(self, request: m.ClientRequest) -> Coroutine[Any, Any, Any]:
        """A put or a merge; the coroutine returns its response, which :meth:`ack` sends."""

    def handle(self, request: m.ClientRequest) -> Coroutine[Any, Any, None]:
        """A listen, a get or an onDisconnect registration (it responds itself, never raises)."""

    def ack(self, request: m.ClientRequest, result: Any, error: BaseException | None) -> None:
        """Answer a write with its ``result`` or its ``error``."""

    def pause_reading(self, paused: bool) -> None:
        """Stop (``True``) or resume (``False``) reading the client's requests."""


class Pending:
    """A request in a lane. ``started`` once its coroutine runs, ``done`` once it returned
    (``result``) or raised (``error``); ``blocks`` while it keeps later writes from starting
    (any request but a started write)."""

    __slots__ = ("blocks", "coro", "done", "error", "request", "result", "started")

    def __init__(self, request: Any) -> None:
        self.request = request
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.started = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.blocks = True


class Lane:
    """The unanswered requests of one connection, in arrival order."""

    __slots__ = ("_blocked", "_drained", "_entries", "_owner", "_paused", "_tasks")

    def __init__(self, owner: LaneOwner) -> None:
        self._owner = owner
        self._entries: deque[Pending] | None = None  # requests not yet answered, in arrival order
        self._blocked = 0  # entries that block
        self._paused = False
        self._drained: asyncio.Future[None] | None = None  # drain() waits for the lane to empty
        self._tasks: set[asyncio.Task[None]] = set()  # gates running

    def __len__(self) -> int:
        return len(self._entries) if self._entries else 0

    def submit(self, request: m.ClientRequest) -> None:
        """A request arrived: answer it, start it, or queue it behind what came before."""
        lane = self._entries
        if not lane:
            if not isinstance(request, ASYNC):
                self._owner.answer_now(request)
                return
            lane = self._entries = deque()
        pending = Pending(request)
        lane.append(pending)
        if self._blocked == 0 and isinstance(request, WRITES):
            self._start(pending)
        elif len(lane) == 1:
            self._start(pending)  # a listen or get with nothing before it
            self._blocked += 1
        else:
            self._blocked += 1
        if len(lane) >= MAX_IN_FLIGHT and not self._paused:
            self._paused = True
            self._owner.pause_reading(True)

    def gate(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` now; requests not yet started wait until it is done."""
        pending = Pending(_GATE)
        pending.started = True
        if self._entries is None:
            self._entries = deque()
        self._entries.appendleft(pending)  # only requests not yet started are in the lane now
        self._blocked += 1
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("taking over a session failed", exc_info=task.exception())
            self._finished(pending, None, None)

        task.add_done_callback(done)

    def drop_unstarted(self) -> None:
        """The connection closed: forget the requests not yet started (those started finish)."""
        lane = self._entries
        if lane:
            self._entries = deque(p for p in lane if p.started)

    async def drain(self) -> None:
        """Wait until every request in the lane is answered."""
        if self._entries:
            self._drained = asyncio.get_running_loop().create_future()
            self._advance()
            await self._drained

    def _start(self, pending: Pending) -> None:
        request = pending.request
        pending.started = True
        if isinstance(request, WRITES):
            pending.blocks = False
            pending.coro = self._owner.write(request)
            self._step(pending, eager=True)
        else:
            task = asyncio.get_running_loop().create_task(self._owner.handle(request))
            task.add_done_callback(lambda _: self._finished(pending, None, None))

    def _step(self, pending: Pending, _: object = None, *, eager: bool = False) -> None:
        coro = pending.coro
        assert coro is not None
        try:
            awaited = coro.send(None)
        except StopIteration as stop:
            self._finished(pending, stop.value, None, eager=eager)
            return
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the lane answers it
            self._finished(pending, None, exc, eager=eager)
            return
        if not resume_when_done(awaited, functools.partial(self._step, pending)):  # a bare yield
            asyncio.get_running_loop().call_soon(self._step, pending)

    def _finished(self, pending: Pending, result: Any, error: BaseException | None, *, eager: bool = False) -> None:
        pending.coro = None
        pending.done = True
        pending.result = result
        pending.error = error
        if eager:  # still inside submit or _advance: answer from a fresh call
            asyncio.get_running_loop().call_soon(self._advance)
        else:
            self._advance()

    def _advance(self) -> None:
        """Answer finished requests at the head of the lane, in order; start what may start."""
        lane = self._entries
        while lane:
            head = lane[0]
            if not head.started:
                request = head.request
                if not isinstance(request, ASYNC):
                    lane.popleft()
                    self._blocked -= 1
                    self._owner.answer_now(request)
                    continue
                if isinstance(request, WRITES):
                    for pending in list(lane):  # this write and the writes right behind it
                        if pending.started or not isinstance(pending.request, WRITES):
                            break
                        self._blocked -= 1
                        self._start(pending)
                else:
                    self._start(head)
                break
            if not head.done:
                break
            lane.popleft()
            if head.blocks:
                self._blocked -= 1
            if isinstance(head.request, WRITES):
                self._owner.ack(head.request, head.result, head.error)
        if not lane:
            self._entries = None
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
        if self._paused and (not lane or len(lane) <= MAX_IN_FLIGHT // 2):
            self._paused = False
            self._owner.pause_reading(False)
