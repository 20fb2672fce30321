"""The writer process's two halves without the process: the child's handling of requests
(groups, control messages, errors) and the server side's handling of answers."""

from __future__ import annotations

import asyncio
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS
from rtdb.core.changes import ChangeSet, decode_changeset
from rtdb.core.errors import PermissionDenied, PreconditionFailed, RtdbError, Unavailable
from rtdb.engine.writer import CONTROL, WriterProcess, _Child
from rtdb.engine.writes import WriteResult

OPEN = '{"rules": {".read": true, ".write": true}}'
CLOSED = '{"rules": {}}'


def _child(tmp_path: Path, rules: str = CLOSED) -> _Child:
    return _Child(tmp_path, "NORMAL", rules, shared=False)


def _set(path: str, value: Any, caller: Any = ANONYMOUS) -> tuple[Any, ...]:
    return ("set", tuple(path.split("/")), value, caller, 1_700_000_000_000, None, None)


def _answers(child: _Child, requests: list[tuple[int, str | None, tuple[Any, ...]]]) -> list[Any]:
    groups: list[Any] = []
    child.handle(requests, groups.append)
    return groups


def test_a_control_message_splits_the_group_so_only_later_writes_see_new_rules(tmp_path: Path) -> None:
    child = _child(tmp_path)
    groups = _answers(child, [(1, "t", _set("a", 1)), (0, CONTROL, ("rules", OPEN)), (2, "t", _set("b", 2))])
    child.close()
    (first_committed, first), (second_committed, second) = groups
    assert first_committed is True and [a[0] for a in first] == [1]  # nothing of it changed: it commits
    assert isinstance(first[0][1], PermissionDenied)
    assert second_committed is True and [a[0] for a in second] == [2]
    rid, error, written, node, encoded = second[0]
    assert (error, written, node) == (None, True, 2)
    changeset = decode_changeset(encoded)
    assert (changeset.namespace, changeset.seq, [c.path for c in changeset.changes]) == ("t", 1, [("b",)])


def test_rules_deployed_in_a_group_apply_to_the_writes_after_them(tmp_path: Path) -> None:
    child = _child(tmp_path, OPEN)
    only_a = '{"rules": {"a": {".write": true}}}'
    groups = _answers(child, [(1, "t", _set("b", 1)), (2, "t", ("meta", "rules", only_a)), (3, "t", _set("b", 2))])
    child.close()
    [(committed, answers)] = groups
    assert committed is True
    assert [(a[0], type(a[1]).__name__ if a[1] else None) for a in answers] == [
        (1, None), (2, None), (3, "PermissionDenied")
    ]
    assert child.access.ruleset("t").source == only_a


def test_an_unexpected_error_is_logged_there_and_answered_as_internal(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    child = _child(tmp_path, OPEN)
    with caplog.at_level(logging.ERROR):
        [(committed, answers)] = _answers(child, [(1, "t", ("bogus",)), (2, "t", _set("ok", True))])
    child.close()
    assert committed is True
    error = answers[0][1]
    assert type(error) is RtdbError and error.message == "Internal server error"
    assert answers[1][1] is None
    assert "write failed" in caplog.text and "bogus" in caplog.text


def test_answers_cross_the_socket_pickled_errors_included(tmp_path: Path) -> None:
    child = _child(tmp_path, OPEN)
    command = ("set", ("c",), 6, ADMIN, 1, "not-the-etag", None)
    groups = _answers(child, [(1, "t", _set("c", 5)), (2, "t", command)])
    child.close()
    _, answers = pickle.loads(pickle.dumps(groups))[0]
    error = answers[1][1]
    assert isinstance(error, PreconditionFailed)
    assert (error.message, error.current) == ("ETag mismatch", 5) and error.etag


async def test_the_server_side_publishes_a_group_before_resolving_its_writes(tmp_path: Path) -> None:
    order: list[str] = []
    published: list[ChangeSet] = []
    writer = WriterProcess(tmp_path, synchronous="NORMAL", default_rules=lambda: OPEN, shared=False,
                           on_commit=lambda results: (order.append("published"),
                                                      published.extend(r.changeset for r in results if r.changeset)),
                           on_lost=lambda ns: None)
    child = _child(tmp_path, OPEN)
    groups = _answers(child, [(1, "t", _set("a", 1)), (2, "t", _set("a", 1)), (3, "t", ("indexes", []))])
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
    writer = WriterProcess(tmp_path, synchronous="NORMAL", default_rules=lambda: OPEN, shared=False,
                           on_commit=published.extend, on_lost=lambda ns: None)
    future = asyncio.get_running_loop().create_future()
    writer._pending[7] = ("t", future)
    writer._received([(None, [(7, None, True, 1, b"\x00")])])
    with pytest.raises(Unavailable):
        await future
    assert published == []

