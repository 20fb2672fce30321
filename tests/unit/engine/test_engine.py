"""The engine over a real store: ChangeSets after commit, preconditions, server values, access."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import InvalidData, PermissionDenied, PreconditionFailed, Unavailable
from rtdb.core.hash import etag, node_hash
from rtdb.core.ipc import Command
from rtdb.core.query import QuerySpec
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.engine.writer import InProcessWriter, WriterHooks, WriterProcess
from rtdb.realtime.broker import InProcessBroker
from rtdb.rules import RulesError, Ruleset
from rtdb.storage.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture(params=["writer thread", "writer process"])
async def engine(tmp_path: Path, request: pytest.FixtureRequest):
    e = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)), clock=Clock(), synchronous="NORMAL",
               writer=WriterProcess(tmp_path, synchronous="NORMAL") if request.param == "writer process" else None)
    yield e
    await e.close()


def collect(engine: Engine, ns: str = "t") -> list[ChangeSet]:
    seen: list[ChangeSet] = []
    engine.feed.subscribe(ns, seen.append)
    return seen


async def test_a_write_publishes_one_changeset_with_old_and_new(engine: Engine) -> None:
    seen = collect(engine)
    await engine.set("t", ("a",), {"b": 1}, caller=ADMIN)
    await engine.set("t", ("a", "b"), 2, caller=ADMIN)
    assert [(c.kind, c.base, [(x.path, x.old, x.new) for x in c.changes]) for c in seen] == [
        ("set", ("a",), [(("a",), None, {"b": 1})]),
        ("set", ("a", "b"), [(("a", "b"), 1, 2)]),
    ]
    assert [c.seq for c in seen] == [1, 2]


async def test_changesets_are_published_before_the_write_is_acknowledged(engine: Engine) -> None:
    seen = collect(engine)
    await engine.set("t", ("x",), 1, caller=ADMIN)
    assert len(seen) == 1


async def test_a_write_that_changes_nothing_publishes_nothing(engine: Engine) -> None:
    await engine.set("t", ("a",), {"b": 1}, caller=ADMIN)
    seen = collect(engine)
    result = await engine.set("t", ("a",), {"b": 1.0}, caller=ADMIN)
    await engine.set("t", ("missing",), None, caller=ADMIN)
    assert seen == [] and result.changeset is None


async def test_a_refused_write_publishes_nothing_and_stores_nothing(engine: Engine) -> None:
    seen = collect(engine)
    with pytest.raises(PermissionDenied):
        await engine.set("t", ("a",), 1, caller=ANONYMOUS)
    with pytest.raises(PreconditionFailed):
        await engine.set("t", ("a",), 1, caller=ADMIN, if_match="nope")
    assert seen == []
    assert await engine.get("t", ("a",), caller=ADMIN) is None


async def test_if_match_compares_the_etag_and_reports_the_current_value(engine: Engine) -> None:
    await engine.set("t", ("c",), 5, caller=ADMIN)
    with pytest.raises(PreconditionFailed) as info:
        await engine.set("t", ("c",), 6, caller=ADMIN, if_match="null_etag")
    assert info.value.current == 5 and info.value.etag == etag(5)
    result = await engine.set("t", ("c",), 6, caller=ADMIN, if_match=etag(5))
    assert result.node == 6 and result.etag == node_hash(6)


async def test_one_timestamp_per_request(engine: Engine) -> None:
    ts = {".sv": "timestamp"}
    result = await engine.update("t", (), {"a": ts, "b/c": ts, "d": {"e": ts}}, caller=ADMIN)
    stored = await engine.get("t", (), caller=ADMIN)
    assert stored["a"] == stored["b"]["c"] == stored["d"]["e"]
    assert result.changeset is not None and len(result.changeset.changes) == 3


async def test_concurrent_increments_are_never_lost(engine: Engine) -> None:
    inc = {".sv": {"increment": 1}}
    await asyncio.gather(*[engine.set("t", ("n",), inc, caller=ADMIN) for _ in range(300)])
    assert await engine.get("t", ("n",), caller=ADMIN) == 300


async def test_update_refuses_overlapping_paths(engine: Engine) -> None:
    with pytest.raises(InvalidData, match="ancestor"):
        await engine.update("t", (), {"a": 1, "a/b": 2}, caller=ADMIN)


async def test_priority_writes_and_queries(engine: Engine) -> None:
    await engine.set("t", ("l",), {"x": 1, "y": 2, "z": 3}, caller=ADMIN)
    await engine.set("t", ("l", "z", ".priority"), 1, caller=ADMIN)
    await engine.update("t", ("l",), {"x/.priority": 2}, caller=ADMIN)
    node = await engine.get("t", ("l",), caller=ADMIN, query=QuerySpec("priority", limit=2, from_last=True))
    assert node == {"z": {".value": 3, ".priority": 1}, "x": {".value": 1, ".priority": 2}}


async def test_namespaces_are_separate_files(engine: Engine, tmp_path: Path) -> None:
    await engine.set("one", ("a",), 1, caller=ADMIN)
    await engine.set("two", ("a",), 2, caller=ADMIN)
    assert await engine.get("one", ("a",), caller=ADMIN) == 1
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["one.sqlite", "two.sqlite"]


async def test_server_wide_rules_that_do_not_compile_leave_the_previous_ones(engine: Engine) -> None:
    await engine.reload_default_rules(Ruleset.open().source)
    with pytest.raises(RulesError):
        await engine.reload_default_rules('{"rules": {".write": "auth.uid ==="}}')
    await engine.set("t", ("a",), 1, caller=ANONYMOUS)  # still open, here and in the writer
    assert await engine.get("t", ("a",), caller=ANONYMOUS) == 1


async def test_rules_changes_reach_the_writer_in_order(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):  # production defaults: closed to non-admins
        await engine.set("t", ("a",), 1, caller=ANONYMOUS)
    await engine.reload_default_rules(Ruleset.open().source)
    await engine.set("t", ("a",), 1, caller=ANONYMOUS)
    await engine.deploy_rules("t", '{"rules": {".read": true, "a": {".write": false}}}', caller=ADMIN)
    with pytest.raises(PermissionDenied):
        await engine.set("t", ("a",), 2, caller=ANONYMOUS)
    await engine.set("u", ("a",), 2, caller=ANONYMOUS)  # another namespace keeps the server's rules
    assert await engine.get("t", ("a",), caller=ADMIN) == 1


async def test_a_dead_writer_process_fails_its_writes_and_is_replaced(tmp_path: Path) -> None:
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL",
                    writer=WriterProcess(tmp_path, synchronous="NORMAL"))
    lost: list[str] = []
    engine.on_lost = lost.append
    try:
        await engine.set("t", ("kept",), 1, caller=ADMIN)
        victim = engine.writer_pid
        assert victim is not None
        writes = [asyncio.ensure_future(engine.set("t", ("w", str(i)), i, caller=ADMIN)) for i in range(2000)]
        await asyncio.sleep(0)  # sent, not yet answered
        os.kill(victim, signal.SIGKILL)
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert failed and all(isinstance(o, Unavailable) for o in failed)
        assert lost == ["t"]
        await engine.set("t", ("after",), 2, caller=ADMIN)  # a new child
        assert engine.writer_pid not in (None, victim)
        assert await engine.get("t", ("kept",), caller=ADMIN) == 1
    finally:
        await engine.close()


class RecordingWriter(InProcessWriter):
    """A writer of its own, as the ``Writer`` seam allows: records what the engine asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def bind(self, hooks: WriterHooks) -> None:
        self.calls.append(f"bind shared={hooks.writes.shared}")
        super().bind(hooks)

    async def open(self, ns: str) -> None:
        self.calls.append(f"open {ns}")

    async def run(self, ns: str, store: Store, command: Command) -> Any:
        self.calls.append(f"run {ns} {type(command).__name__}")
        return await super().run(ns, store, command)

    async def set_default_rules(self, source: str) -> None:
        self.calls.append("rules")

    async def close(self) -> None:
        self.calls.append("close")


async def test_the_engine_runs_every_write_through_the_writer_it_is_given(tmp_path: Path) -> None:
    writer = RecordingWriter()
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)), synchronous="NORMAL", writer=writer)
    await engine.set("t", ("a",), 1, caller=ADMIN)
    await engine.update("t", (), {"b": 2}, caller=ADMIN)
    await engine.reload_default_rules('{"rules": {".read": true}}')
    assert await engine.get("t", (), caller=ADMIN) == {"a": 1, "b": 2}
    await engine.close()
    assert writer.calls == ["bind shared=False", "open t", "run t SetCommand", "run t UpdateCommand", "rules", "close"]


async def test_a_broker_between_processes_makes_the_engine_shared(tmp_path: Path) -> None:
    class SharedBroker(InProcessBroker):
        shared = True

    writer = RecordingWriter()
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)), feed=SharedBroker(), writer=writer)
    try:
        assert engine.shared and engine.writes.shared
        assert writer.calls == ["bind shared=True"]
    finally:
        await engine.close()
