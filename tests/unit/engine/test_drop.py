"""Dropping and compacting a namespace in the engine: admins only, files deleted once every
store let go, operations meanwhile wait and then see no namespace; another process's drop
(announced through the broker) closes the namespace here until it says it is done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import NoNamespace, PermissionDenied
from rtdb.engine.access import RulesAccess
from rtdb.engine.engine import Engine
from rtdb.engine.writer import WriterProcess
from rtdb.realtime.broker import InProcessBroker
from rtdb.rules import Ruleset
from rtdb.storage.files import hold

RULES = '{"rules": {".read": true, ".write": true}}'


class AnnouncingBroker(InProcessBroker):
    """In-process delivery, plus what ``announce`` was told and a way to announce to the engine."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[tuple[str, str]] = []
        self.forgotten: list[str] = []
        self._hear: list[Callable[[str, str], None]] = []

    def announce(self, kind: str, ns: str) -> None:
        self.said.append((kind, ns))

    def on_announce(self, callback: Callable[[str, str], None]) -> None:
        self._hear.append(callback)

    def forget_namespace(self, ns: str) -> None:
        self.forgotten.append(ns)

    def hear(self, kind: str, ns: str) -> None:
        for callback in self._hear:
            callback(kind, ns)

    def delivered(self, changeset: ChangeSet) -> Awaitable[None] | None:
        return None


@pytest.fixture(params=["writer thread", "writer process"])
async def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    writer = WriterProcess(tmp_path, synchronous="NORMAL") if request.param == "writer process" else None
    e = Engine(tmp_path, access=RulesAccess(Ruleset.compile(RULES)), synchronous="NORMAL",
               feed=AnnouncingBroker(), writer=writer)
    dropped: list[str] = []
    e.on_dropped = dropped.append
    e.dropped_calls = dropped  # type: ignore[attr-defined]
    yield e
    await e.close()


def files(tmp_path: Path, ns: str) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(ns + ".sqlite"))


async def test_a_drop_deletes_the_namespace_and_a_write_afterwards_creates_it_anew(engine: Engine,
                                                                                    tmp_path: Path) -> None:
    await engine.set("ns", ("a",), {"b": 1}, caller=ANONYMOUS)
    await engine.deploy_rules("ns", '{"rules": {".read": true, ".write": false}}', caller=ADMIN)
    assert files(tmp_path, "ns")
    freed = await engine.drop("ns", caller=ADMIN)
    assert freed is not None and freed > 0
    assert files(tmp_path, "ns") == []
    assert engine.dropped_calls == ["ns"]  # type: ignore[attr-defined]
    assert engine.feed.said == [("rules", "ns"), ("drop", "ns"), ("dropped", "ns")]  # type: ignore[attr-defined]
    assert await engine.get("ns", (), caller=ANONYMOUS) is None
    assert files(tmp_path, "ns") == []  # a read created nothing
    await engine.set("ns", ("c",), 2, caller=ANONYMOUS)  # its deployed rules went with it
    assert await engine.get("ns", (), caller=ANONYMOUS) == {"c": 2}
    assert await engine.drop("never", caller=ADMIN) is None


async def test_only_admins_drop_or_compact(engine: Engine, tmp_path: Path) -> None:
    await engine.set("ns", ("a",), 1, caller=ANONYMOUS)
    with pytest.raises(PermissionDenied):
        await engine.drop("ns", caller=ANONYMOUS)
    with pytest.raises(PermissionDenied):
        await engine.compact("ns", caller=ANONYMOUS)
    with pytest.raises(NoNamespace):
        await engine.drop("../etc", caller=ADMIN)
    with pytest.raises(NoNamespace):
        await engine.compact("missing", caller=ADMIN)
    assert await engine.get("ns", ("a",), caller=ANONYMOUS) == 1


async def test_operations_during_a_drop_wait_and_then_see_no_namespace(engine: Engine, tmp_path: Path) -> None:
    await engine.set("ns", ("a",), 1, caller=ANONYMOUS)
    other = await asyncio.to_thread(hold, tmp_path / "ns.sqlite")  # another process still has it open
    dropping = asyncio.ensure_future(engine.drop("ns", caller=ADMIN))
    while "ns" not in engine.dropped_calls:  # type: ignore[attr-defined]
        await asyncio.sleep(0.001)
    read = asyncio.ensure_future(engine.get("ns", ("a",), caller=ANONYMOUS))
    write = asyncio.ensure_future(engine.set("ns", ("b",), 2, caller=ANONYMOUS))
    await asyncio.sleep(0.05)
    assert not read.done() and not write.done() and not dropping.done()
    other.release()  # it let go: the files go, then the waiting operations run
    assert await dropping is not None
    assert await read is None
    await write
    assert await engine.get("ns", (), caller=ANONYMOUS) == {"b": 2}


async def test_another_process_dropping_closes_the_namespace_here_until_it_is_done(engine: Engine,
                                                                                   tmp_path: Path) -> None:
    if not engine.writer.in_process:
        pytest.skip("--write-process runs with one worker only")
    await engine.set("ns", ("a",), 1, caller=ANONYMOUS)
    broker: AnnouncingBroker = engine.feed  # type: ignore[assignment]
    broker.hear("drop", "ns")
    while engine.open_namespaces():  # it lets go of the files
        await asyncio.sleep(0.001)
    assert engine.dropped_calls == ["ns"]  # type: ignore[attr-defined]
    assert "ns" in broker.forgotten
    freed = await asyncio.to_thread(lambda: engine.backend.drop("ns"))  # type: ignore[attr-defined]
    assert freed is not None
    read = asyncio.ensure_future(engine.get("ns", ("a",), caller=ANONYMOUS))
    await asyncio.sleep(0.05)
    assert not read.done()  # not until the dropping process says it is done
    broker.hear("dropped", "ns")
    assert await read is None


async def test_compaction_reports_the_space_given_back(engine: Engine, tmp_path: Path) -> None:
    await engine.set("ns", ("big",), {f"k{i:05d}": "x" * 500 for i in range(5_000)}, caller=ADMIN)
    await engine.set("ns", ("big",), None, caller=ADMIN)
    report = await engine.compact("ns", caller=ADMIN)
    assert report.auto_vacuum == "incremental"
    assert report.bytes_after < 200_000 and report.wal_truncated
