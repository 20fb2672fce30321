"""Large writes through the engine over a real store: validation leaves the event loop free."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import rtdb.engine.engine as engine_module
from rtdb.core.auth import ADMIN
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
