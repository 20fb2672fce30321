"""Namespaces: only an allowed write creates one, a missing one reads as empty, idle ones
close their files and reopen on use."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS
from rtdb.core.errors import NoNamespace, PermissionDenied
from rtdb.engine.access import RulesAccess
from rtdb.engine.engine import Engine
from rtdb.engine.writer import WriterProcess
from rtdb.rules import Ruleset

RULES = '{"rules": {"open": {".read": true, ".write": true}}}'


@pytest.fixture(params=["writer thread", "writer process"])
async def engine(tmp_path: Path, request: pytest.FixtureRequest):
    e = Engine(tmp_path, access=RulesAccess(Ruleset.compile(RULES)), synchronous="NORMAL", idle_close_s=0.2,
               writer=WriterProcess(tmp_path, synchronous="NORMAL") if request.param == "writer process" else None)
    yield e
    await e.close()


def descriptors_on(file: Path) -> int:
    """This process's open descriptors on ``file`` or its WAL and shared-memory files."""
    names = {str(file), f"{file}-wal", f"{file}-shm"}
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") in names
        except OSError:
            pass
    return count


async def test_reads_of_a_missing_namespace_see_nothing_and_create_nothing(engine: Engine, tmp_path: Path) -> None:
    assert await engine.get("ghost", ("open",), caller=ANONYMOUS) is None
    assert await engine.shallow("ghost", ("open",), caller=ANONYMOUS) == (None, [])
    with pytest.raises(PermissionDenied):
        await engine.get("ghost", ("closed",), caller=ANONYMOUS)
    assert not (tmp_path / "ghost.sqlite").exists()


async def test_a_denied_write_creates_nothing_and_an_allowed_one_creates_the_file(engine: Engine,
                                                                                   tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied):
        await engine.set("born", ("closed",), 1, caller=ANONYMOUS)
    with pytest.raises(PermissionDenied):
        await engine.update("born", (), {"open/a": 1, "closed/b": 2}, caller=ANONYMOUS)
    assert not (tmp_path / "born.sqlite").exists()
    await engine.set("born", ("open", "a"), 1, caller=ANONYMOUS)
    assert (tmp_path / "born.sqlite").exists()
    assert await engine.get("born", (), caller=ADMIN) == {"open": {"a": 1}}


async def test_a_name_with_a_trailing_newline_is_not_a_namespace(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(NoNamespace):
        await engine.set("abc\n", ("open",), 1, caller=ADMIN)
    assert list(tmp_path.glob("abc*")) == []


async def test_an_idle_namespace_closes_its_files_and_reopens_on_use(engine: Engine, tmp_path: Path) -> None:
    await engine.set("idle", ("open", "a"), 1, caller=ANONYMOUS)
    file = tmp_path / "idle.sqlite"
    assert descriptors_on(file) > 0
    thread_mode = engine.writer_pid is None  # (the writer process keeps its write connection)
    for _ in range(200):  # the sweeper runs every idle_close_s / 4
        if "idle" not in engine.open_namespaces() and (descriptors_on(file) == 0 or not thread_mode):
            break
        await asyncio.sleep(0.05)
    assert "idle" not in engine.open_namespaces()
    if thread_mode:
        assert descriptors_on(file) == 0
    await engine.set("idle", ("open", "b"), 2, caller=ANONYMOUS)
    assert await engine.get("idle", ("open",), caller=ANONYMOUS) == {"a": 1, "b": 2}


async def test_writes_that_create_a_namespace_commit_in_the_order_they_came(engine: Engine) -> None:
    seen: list[object] = []
    engine.feed.subscribe("queue", lambda cs: seen.extend(c.new for c in cs.changes))
    writes = []
    for i in range(300):  # arriving one per turn of the loop, as a pipelining client's do
        writes.append(asyncio.ensure_future(engine.set("queue", ("open", "last"), i, caller=ANONYMOUS)))
        await asyncio.sleep(0)
    await asyncio.gather(*writes)
    assert seen == list(range(300))
    assert await engine.get("queue", ("open", "last"), caller=ANONYMOUS) == 299
