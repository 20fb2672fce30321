"""The writer process's two halves without the process: the child's handling of requests
(groups, control messages, errors) and the server side's handling of answers; both cross
the socket as msgpack (:mod:`rtdb.core.ipc`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rtdb.core import ipc
from rtdb.core.auth import ADMIN, ANONYMOUS, Caller
from rtdb.core.changes import ChangeSet, decode_changeset
from rtdb.core.errors import InvalidData, PermissionDenied, PreconditionFailed, RtdbError, Unavailable
from rtdb.core.ipc import (
    Command,
    DisconnectCommand,
    Failed,
    Group,
    IndexesCommand,
    MetaCommand,
    Request,
    RulesCommand,
    SetCommand,
    Written,
)
from rtdb.engine.access import RulesAccess
from rtdb.engine.writer import CONTROL, WriterHooks, WriterProcess, _Child
from rtdb.engine.writes import WriteResult, Writes
from rtdb.rules import Ruleset

OPEN = '{"rules": {".read": true, ".write": true}}'
CLOSED = '{"rules": {}}'


def _child(tmp_path: Path, rules: str = CLOSED) -> _Child:
    return _Child(tmp_path, "NORMAL", rules, shared=False)


def _set(path: str, value: Any, caller: Any = ANONYMOUS) -> SetCommand:
    return SetCommand(tuple(path.split("/")), value, caller, 1_700_000_000_000)


def _answers(child: _Child, requests: list[tuple[int, str | None, Command]]) -> list[Group]:
    """The child's answers to ``requests``, as the server decodes them from the socket."""
    sent = ipc.decode_requests(ipc.encode([Request(*r) for r in requests]))
    groups: list[Group] = []
    child.handle(sent, groups.append)
    return ipc.decode_groups(ipc.encode(groups))


def test_a_control_message_splits_the_group_so_only_later_writes_see_new_rules(tmp_path: Path) -> None:
    child = _child(tmp_path)
    groups = _answers(child, [(1, "t", _set("a", 1)), (0, CONTROL, RulesCommand(OPEN)), (2, "t", _set("b", 2))])
    child.close()
    first, second = groups
    assert first.committed is True and [a.id for a in first.answers] == [1]  # nothing of it changed: it commits
    assert isinstance(first.answers[0], Failed)
    assert isinstance(ipc.error_of(first.answers[0]), PermissionDenied)
    assert second.committed is True and [a.id for a in second.answers] == [2]
    [written] = second.answers
    assert isinstance(written, Written) and written.node == 2 and written.encoded is not None
    changeset = decode_changeset(written.encoded)
    assert (changeset.namespace, changeset.seq, [c.path for c in changeset.changes]) == ("t", 1, [("b",)])


def test_rules_deployed_in_a_group_apply_to_the_writes_after_them(tmp_path: Path) -> None:
    child = _child(tmp_path, OPEN)
    only_a = '{"rules": {"a": {".write": true}}}'
    groups = _answers(child, [(1, "t", _set("b", 1)), (2, "t", MetaCommand("rules", only_a)), (3, "t", _set("b", 2))])
    child.close()
    [group] = groups
    assert group.committed is True
    assert [(a.id, type(a).__name__, getattr(a, "code", None)) for a in group.answers] == [
        (1, "Written", None), (2, "Done", None), (3, "Failed", "permission_denied")
    ]
    assert child.access.ruleset("t").source == only_a


def test_an_unexpected_error_is_logged_there_and_answered_as_internal(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    child = _child(tmp_path, OPEN)
    not_here = DisconnectCommand("session", "taker", None, None, 1)  # SQLite keeps no onDisconnect rows: TypeError
    with caplog.at_level(logging.ERROR):
        [group] = _answers(child, [(1, "t", not_here), (2, "t", _set("ok", True))])
    child.close()
    assert group.committed is True
    failed, ok = group.answers
    assert isinstance(failed, Failed)
    error = ipc.error_of(failed)
    assert type(error) is RtdbError and error.message == "Internal server error" and error.code == "internal_error"
    assert isinstance(ok, Written)
    assert "write failed" in caplog.text and "onDisconnect" in caplog.text


def test_a_failed_precondition_crosses_the_socket_with_its_value_and_etag(tmp_path: Path) -> None:
    child = _child(tmp_path, OPEN)
    command = SetCommand(("c",), 6, ADMIN, 1, "not-the-etag", None)
    [group] = _answers(child, [(1, "t", _set("c", 5)), (2, "t", command)])
    child.close()
    answer = group.answers[1]
    assert isinstance(answer, Failed)
    error = ipc.error_of(answer)
    assert isinstance(error, PreconditionFailed)
    assert (error.message, error.current) == ("ETag mismatch", 5) and error.etag


def _bound(tmp_path: Path, on_commit: Callable[[list[WriteResult]], Any]) -> WriterProcess:
    """A writer process's server side, bound as an engine would bind it (its child is not started)."""
    writer = WriterProcess(tmp_path, synchronous="NORMAL")
    writer.bind(WriterHooks(writes=Writes(RulesAccess(Ruleset.compile(OPEN))),
                            default_rules=lambda: OPEN, on_commit=on_commit, on_lost=lambda ns: None))
    return writer


async def test_the_server_side_publishes_a_group_before_resolving_its_writes(tmp_path: Path) -> None:
    order: list[str] = []
    published: list[ChangeSet] = []
    writer = _bound(tmp_path, lambda results: (order.append("published"),
                                               published.extend(r.changeset for r in results if r.changeset)))
    child = _child(tmp_path, OPEN)
    groups = _answers(child, [(1, "t", _set("a", 1)), (2, "t", _set("a", 1)), (3, "t", IndexesCommand([]))])
    child.close()
    loop = asyncio.get_running_loop()
    futures = {rid: loop.create_future() for rid in (1, 2, 3)}
    for rid, future in futures.items():
        writer._pending[rid] = ("t", future)
        future.add_done_callback(lambda f, rid=rid: order.append(f"resolved {rid}"))
    writer._received(groups)
    await asyncio.sleep(0)
    assert order == ["published", "resolved 1", "resolved 2", "resolved 3"]
    first, second, third = (futures[rid].result() for rid in (1, 2, 3))
    assert isinstance(first, WriteResult) and first.changeset is not None and first.node == 1
    assert isinstance(second, WriteResult) and second.changeset is None  # changed nothing: not published
    assert third is None
    assert [c.seq for c in published] == [1]


async def test_a_group_whose_commit_failed_fails_every_write_and_publishes_nothing(tmp_path: Path) -> None:
    published: list[Any] = []
    writer = _bound(tmp_path, published.extend)
    future = asyncio.get_running_loop().create_future()
    writer._pending[7] = ("t", future)
    writer._received([Group(None, [Written(7, 1, b"\x00")])])
    with pytest.raises(Unavailable):
        await future
    assert published == []



async def test_a_request_msgpack_cannot_carry_fails_alone_and_the_others_are_sent(tmp_path: Path) -> None:
    """A caller built with an integer beyond 64 bits (claims are made doubles before that,
    :func:`rtdb.core.auth.json_numbers`, so only a bug could): that write fails at once with
    a clear error, the writes in the same frame still go, and nothing waits forever."""
    writer = _bound(tmp_path, lambda results: None)
    sent: list[bytes] = []
    writer._link = SimpleNamespace(transport=SimpleNamespace(write=sent.append))  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    futures = {rid: loop.create_future() for rid in (1, 2, 3)}
    for rid, future in futures.items():
        writer._pending[rid] = ("t", future)
    writer._send(1, "t", _set("a", 1))
    writer._send(2, "t", _set("b", 2, Caller(auth={"big": 2**70})))
    writer._send(3, "t", _set("c", 3))
    writer._flush()
    [frame] = sent
    assert [r.id for r in ipc.decode_requests(frame[4:])] == [1, 3]
    with pytest.raises(InvalidData, match="cannot reach the writer process"):
        await futures[2]
    assert not futures[1].done() and not futures[3].done() and set(writer._pending) == {1, 3}
