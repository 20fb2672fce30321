"""Large writes through the engine over a real store: validation leaves the event loop free."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import rtdb.engine.engine as engine_module
from rtdb.core.auth import ADMIN
from rtdb.core.errors import InvalidData
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import LARGE_VALUE_NODES, Engine


@pytest.fixture
async def engine(tmp_path: Path):
    e = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL")
    yield e
    await e.close()


def _validation_that_needs_the_loop(monkeypatch: pytest.MonkeyPatch, name: str, loop_ran: threading.Event,
                                    seen: list[bool]) -> None:
    """Replace the engine's ``name`` by one that first waits (10 s at most) for the event loop
    to run a callback: if validation ran on the loop, that callback cannot run meanwhile."""
    real = getattr(engine_module, name)

    def waiting(*args: Any) -> Any:
        seen.append(loop_ran.wait(timeout=10))
        return real(*args)

    monkeypatch.setattr(engine_module, name, waiting)


async def _while_ticking(loop_ran: threading.Event, write: Any) -> Any:
    """Await ``write`` with a callback pending that tells when the event loop ran."""

    async def tick() -> None:
        await asyncio.sleep(0)
        loop_ran.set()

    ticker = asyncio.get_running_loop().create_task(tick())  # runs at the loop's next turn, not before
    try:
        return await write
    finally:
        await ticker


async def test_a_large_set_is_validated_while_the_event_loop_runs(engine: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    loop_ran, seen = threading.Event(), []
    _validation_that_needs_the_loop(monkeypatch, "normalize", loop_ran, seen)
    value = {f"k{i:06d}": i for i in range(LARGE_VALUE_NODES + 1)}
    await _while_ticking(loop_ran, engine.set("t", ("big",), value, caller=ADMIN))
    assert seen == [True]
    assert len(await engine.get("t", ("big",), caller=ADMIN)) == LARGE_VALUE_NODES + 1


async def test_a_large_update_is_validated_while_the_event_loop_runs(engine: Engine,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    loop_ran, seen = threading.Event(), []
    _validation_that_needs_the_loop(monkeypatch, "parse_updates", loop_ran, seen)
    value = {f"k{i:06d}/x": i for i in range(LARGE_VALUE_NODES + 1)}
    await _while_ticking(loop_ran, engine.update("t", ("big",), value, caller=ADMIN))
    assert seen == [True]


async def test_a_small_write_is_validated_at_once(engine: Engine) -> None:
    """No thread hop for the common case: the write is queued before ``set`` first yields."""
    assert not engine_module._is_large({f"k{i}": {"a": 1, "b": [1, 2]} for i in range(100)})
    assert engine_module._is_large({"a": [{"b": i} for i in range(LARGE_VALUE_NODES)]})
    await engine.set("t", ("small",), {"a": 1}, caller=ADMIN)
    assert await engine.get("t", ("small",), caller=ADMIN) == {"a": 1}


async def test_a_write_behind_a_large_one_is_applied_after_it(engine: Engine) -> None:
    """A connection's writes apply in order: the small write that arrives while the large
    one is validated in its thread waits for it, rather than reaching the writer first."""
    large = {f"k{i:06d}": i for i in range(5 * LARGE_VALUE_NODES)}
    first = asyncio.ensure_future(engine.set("t", ("x",), large, caller=ADMIN))
    await asyncio.sleep(0)  # the large write starts: it is being validated
    second = asyncio.ensure_future(engine.set("t", ("x",), "small", caller=ADMIN))
    await asyncio.gather(first, second)
    assert await engine.get("t", ("x",), caller=ADMIN) == "small"


async def test_a_failed_write_between_keeps_the_order_of_the_others(engine: Engine) -> None:
    large = {f"k{i:06d}": i for i in range(5 * LARGE_VALUE_NODES)}
    first = asyncio.ensure_future(engine.set("t", ("x",), large, caller=ADMIN))
    await asyncio.sleep(0)
    bad = asyncio.ensure_future(engine.set("t", ("x",), {"a.b": 1}, caller=ADMIN))
    last = asyncio.ensure_future(engine.set("t", ("x",), "last", caller=ADMIN))
    results = await asyncio.gather(first, bad, last, return_exceptions=True)
    assert isinstance(results[1], InvalidData)
    assert await engine.get("t", ("x",), caller=ADMIN) == "last"
    await engine.set("t", ("y",), 1, caller=ADMIN)  # nothing left waiting: the next write goes at once
    assert engine._validating is None


async def test_a_priority_written_behind_a_large_write_lands_on_it(engine: Engine) -> None:
    large = {f"k{i:06d}": i for i in range(5 * LARGE_VALUE_NODES)}
    first = asyncio.ensure_future(engine.set("t", ("x",), large, caller=ADMIN))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(engine.set("t", ("x", ".priority"), 7, caller=ADMIN))
    await asyncio.gather(first, second)
    node = await engine.get("t", ("x",), caller=ADMIN)
    assert node[".priority"] == 7 and len(node) == len(large) + 1
