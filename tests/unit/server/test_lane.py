"""The lane of a WebSocket connection: stepping coroutines without a Task, and answering in order."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from rtdb.protocol import messages as m
from rtdb.server.lane import MAX_IN_FLIGHT, Lane, resume_when_done

# -- resume_when_done: asyncio's private convention, checked against this Python -------------


async def test_a_coroutine_awaiting_a_future_yields_it_and_is_resumed_with_its_result() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait() -> int:
        return await future + 1

    coro = wait()
    awaited = coro.send(None)
    assert awaited is future
    resumed: list[object] = []
    assert resume_when_done(awaited, resumed.append) is True
    assert future._asyncio_future_blocking is False  # type: ignore[attr-defined]  # cleared, as a Task does
    future.set_result(41)
    await asyncio.sleep(0)  # done callbacks run on the next loop turn
    assert resumed == [future]
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == 42


async def test_a_task_awaited_inside_the_coroutine_is_taken_over_too() -> None:
    async def inner() -> str:
        await asyncio.sleep(0)
        return "done"

    async def outer() -> str:
        return await asyncio.get_running_loop().create_task(inner())

    coro = outer()
    awaited = coro.send(None)
    resumed = asyncio.get_running_loop().create_future()
    assert resume_when_done(awaited, resumed.set_result)
    await asyncio.wait_for(resumed, 5)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == "done"


async def test_a_failed_future_raises_inside_the_resumed_coroutine() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait() -> int:
        return await future

    coro = wait()
    assert resume_when_done(coro.send(None), lambda _: None)
    future.set_exception(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        coro.send(None)


async def test_a_bare_yield_is_not_taken_over() -> None:
    coro = asyncio.sleep(0)
    awaited = coro.send(None)  # asyncio.sleep(0) yields None: "run me again soon"
    called: list[object] = []
    assert resume_when_done(awaited, called.append) is False
    assert called == []
    with pytest.raises(StopIteration):
        coro.send(None)


# -- the lane's order --------------------------------------------------------------------------


class Owner:
    """Runs requests on futures the test resolves; records what is answered, in order."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.futures: dict[int, asyncio.Future[None]] = {}
        self.started: list[int] = []
        self.pauses: list[bool] = []

    def _future(self, r: int) -> asyncio.Future[None]:
        self.started.append(r)
        future = self.futures[r] = asyncio.get_running_loop().create_future()
        return future

    def answer_now(self, request: m.ClientRequest) -> None:
        self.answers.append((request.r, "now"))

    def write(self, request: m.ClientRequest) -> Coroutine[Any, Any, Any]:
        async def run() -> str:
            await self._future(request.r)
            return "ok"

        return run()

    def handle(self, request: m.ClientRequest) -> Coroutine[Any, Any, None]:
        async def run() -> None:
            await self._future(request.r)
            self.answers.append((request.r, "handled"))

        return run()

    def ack(self, request: m.ClientRequest, result: Any, error: BaseException | None) -> None:
        self.answers.append((request.r, result if error is None else repr(error)))

    def pause_reading(self, paused: bool) -> None:
        self.pauses.append(paused)


def _put(r: int) -> m.Put:
    return m.Put(r, m.PutBody(p="/x", d=r))


def _listen(r: int) -> m.Listen:
    return m.Listen(r, m.ListenBody(p="/x"))


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_consecutive_writes_start_together_and_are_acked_in_arrival_order() -> None:
    owner = Owner()
    lane = Lane(owner)
    for r in (1, 2, 3):
        lane.submit(_put(r))
    assert owner.started == [1, 2, 3]
    owner.futures[3].set_result(None)
    owner.futures[2].set_result(None)
    await _turns()
    assert owner.answers == []  # 1 is not answered yet: nothing behind it is
    owner.futures[1].set_result(None)
    await _turns()
    assert owner.answers == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert len(lane) == 0


async def test_a_listen_waits_for_the_writes_before_it_and_holds_back_those_after() -> None:
    owner = Owner()
    lane = Lane(owner)
    lane.submit(_put(1))
    lane.submit(_listen(2))
    lane.submit(_put(3))
    lane.submit(m.Unlisten(4, m.UnlistenBody(p="/x")))
    assert owner.started == [1]
    owner.futures[1].set_result(None)
    await _turns()
    assert owner.started == [1, 2]
    owner.futures[2].set_result(None)
    await _turns()
    assert owner.started == [1, 2, 3]
    owner.futures[3].set_result(None)
    await _turns()
    assert owner.answers == [(1, "ok"), (2, "handled"), (3, "ok"), (4, "now")]


async def test_a_request_needing_no_io_is_answered_at_once_on_an_empty_lane() -> None:
    owner = Owner()
    lane = Lane(owner)
    lane.submit(m.Unlisten(7, m.UnlistenBody(p="/x")))
    assert owner.answers == [(7, "now")] and len(lane) == 0


async def test_a_failed_write_is_acked_with_its_error_in_its_turn() -> None:
    owner = Owner()
    lane = Lane(owner)
    lane.submit(_put(1))
    lane.submit(_put(2))
    owner.futures[1].set_exception(ValueError("bad"))
    owner.futures[2].set_result(None)
    await _turns()
    assert owner.answers == [(1, "ValueError('bad')"), (2, "ok")]


async def test_a_full_lane_pauses_reading_and_resumes_at_half() -> None:
    owner = Owner()
    lane = Lane(owner)
    lane.submit(_listen(0))  # holds every later request back
    for r in range(1, MAX_IN_FLIGHT):
        lane.submit(_put(r))
    assert owner.pauses == [True]
    await _turns()  # the listen's task runs
    owner.futures[0].set_result(None)
    await _turns()
    for r in range(1, MAX_IN_FLIGHT // 2 + 1):
        owner.futures[r].set_result(None)
    await _turns()
    assert owner.pauses == [True, False]
    assert len(lane) == MAX_IN_FLIGHT // 2 - 1


async def test_drain_waits_for_started_requests_and_forgets_those_not_started() -> None:
    owner = Owner()
    lane = Lane(owner)
    lane.submit(_listen(1))
    lane.submit(_put(2))
    lane.drop_unstarted()
    drained = asyncio.get_running_loop().create_task(lane.drain())
    await _turns()  # the listen's task runs; the put was never started
    assert not drained.done()
    owner.futures[1].set_result(None)
    await asyncio.wait_for(drained, 5)
    assert owner.started == [1] and owner.answers == [(1, "handled")]
