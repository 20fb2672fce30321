"""Messages between rtdb's processes (rtdb.core.ipc): every kind comes back from msgpack exactly
as it went in, numbers keeping their type, paths staying tuples; errors keep class and code."""

from __future__ import annotations

from typing import Any

import pytest

from rtdb.core import errors, ipc
from rtdb.core.auth import ADMIN, Caller
from rtdb.core.changes import Change, ChangeSet, encode_changeset
from rtdb.core.errors import (
    PreconditionFailed,
    RtdbError,
)
from rtdb.core.ipc import (
    BrokerAnnounce,
    BrokerChange,
    BrokerPointer,
    CloseCommand,
    CompactCommand,
    Compacted,
    DisconnectCommand,
    Done,
    Failed,
    Group,
    IndexesCommand,
    MetaCommand,
    OpenCommand,
    PriorityCommand,
    Request,
    RulesCommand,
    SetCommand,
    UpdateCommand,
    Written,
    YdocCommand,
)
from rtdb.rules.errors import RulesError

TREE: Any = {
    "one": 1, "one_float": 1.0, "half": 0.5, "negative_zero": -0.0, "max_safe": 2**53, "min_safe": -(2**53),
    "big_float": 1e300, "none": None, "yes": True, "no": False, "text": "héllo \u0000 ☃", "empty": {},
    "nested": {"list": [1, 1.0, None, {"deep": [[], "x"]}], ".priority": 2.5, ".value": "v"},
}
CALLER = Caller(auth={"uid": "alice", "token": {"exp": 1.0, "iat": 17, "claims": [1, 2.0, None]}},
                expires_at_ms=1_700_000_000_000)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (``1 == 1.0`` and ``(1,) != [1]`` here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)  # -0.0 stays -0.0
    if hasattr(a, "__struct_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__struct_fields__)
    if isinstance(a, Caller):
        return same((a.admin, a.auth, a.expires_at_ms), (b.admin, b.auth, b.expires_at_ms))
    return bool(a == b)


def test_the_type_strict_comparison_tells_ints_floats_lists_and_tuples_apart() -> None:
    assert same({"a": [1, (2,)]}, {"a": [1, (2,)]})
    assert not same(1, 1.0) and not same((1,), [1]) and not same(0.0, -0.0)
    assert not same(SetCommand(("a",), 1, ADMIN, 1), SetCommand(("a",), 1.0, ADMIN, 1))


COMMANDS = [
    SetCommand(("users", "alice"), TREE, CALLER, 1_700_000_000_000, "etag", "hash"),
    SetCommand((), None, ADMIN, 0),
    PriorityCommand(("a", "b"), 1.0, CALLER, 5),
    UpdateCommand(("base",), [(("base", "x"), TREE), (("base", "y", ".priority"), 3)], CALLER, 7, None),
    MetaCommand("rules", '{"rules": {}}'),
    IndexesCommand([(("users", "$uid"), ("age",)), ((), (".value",))]),
    DisconnectCommand("session", "node-1", None, 12, 99),
    YdocCommand(("docs", "d"), [(b"\x00\x01\xff", CALLER), (b"", ADMIN)], 3),
    OpenCommand(),
    CloseCommand(),
    CompactCommand(),
    RulesCommand('{"rules": {".read": true}}'),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_crosses_to_the_writer_process_unchanged(command: Any) -> None:
    requests = [Request(1, "ns", command), Request(2, None, command)]
    back = ipc.decode_requests(ipc.encode(requests))
    assert same(back, requests)


def test_paths_come_back_as_tuples() -> None:
    [back] = ipc.decode_requests(ipc.encode([Request(1, "ns", COMMANDS[3])]))
    assert isinstance(back.command, UpdateCommand)
    assert type(back.command.base) is tuple and type(back.command.items[0][0]) is tuple


def test_every_answer_crosses_back_unchanged() -> None:
    changeset = ChangeSet("ns", 3, "update", ("a",), (Change(("a", "b"), 1, 1.0), Change(("a", "c"), TREE, None)))
    groups = [
        Group(True, [Written(1, TREE, encode_changeset(changeset)), Written(2, 1.0, None), Done(3),
                     Compacted(4, 8192, 4096, 1, "incremental", True)]),
        Group(False, [Failed(5, "datastale", "ETag mismatch", TREE, "etag")]),
        Group(None, [Failed(6, "permission_denied", "Permission denied")]),
    ]
    assert same(ipc.decode_groups(ipc.encode(groups)), groups)


def _every_error() -> list[RtdbError]:
    """One instance of every error class of rtdb.core.errors (a class added there is tested here)."""
    classes = [cls for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, RtdbError) and cls.__module__ == errors.__name__
               and cls not in (RtdbError, PreconditionFailed)]
    assert len(classes) >= 9
    return [cls(f"message of {cls.__name__}") for cls in classes] + [
        PreconditionFailed("ETag mismatch", {"a": 1.0}, "tag"), PreconditionFailed("datastale", None, None)]


ERRORS = _every_error()


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_comes_back_as_the_same_class_code_and_message(error: RtdbError) -> None:
    [group] = ipc.decode_groups(ipc.encode([Group(True, [ipc.failed(9, error)])]))
    [answer] = group.answers
    assert isinstance(answer, Failed) and answer.id == 9
    back = ipc.error_of(answer)
    assert type(back) is type(error) and back.code == error.code and back.message == error.message
    if isinstance(error, PreconditionFailed):
        assert isinstance(back, PreconditionFailed)
        assert same(back.current, error.current) and back.etag == error.etag


def test_an_error_of_another_layer_keeps_its_code() -> None:
    back = ipc.error_of(ipc.failed(1, RulesError("bad rules")))
    assert back.code == "invalid_rules" and back.message == "bad rules"
    internal = ipc.error_of(ipc.failed(1, RtdbError("Internal server error")))
    assert type(internal) is RtdbError and internal.code == "internal_error"


def test_broker_messages_cross_between_processes_unchanged() -> None:
    changeset = ChangeSet("ns", 8, "set", ("k",), (Change(("k",), None, TREE),))
    for message in (BrokerChange("", "", changeset), BrokerChange("n1", "e1", changeset),
                    BrokerPointer("n1", "e1", "ns", 9), BrokerAnnounce("", "rules", "ns")):
        assert same(ipc.decode_broker(ipc.encode(message)), message)


@pytest.mark.parametrize(("node", "epoch"), [("", ""), ("n1", "e1")])
def test_a_change_is_sent_from_its_encoding_as_if_encoded_whole(node: str, epoch: str) -> None:
    changeset = ChangeSet("ns", 8, "update", ("k",), (Change(("k", "x"), 1, 2.0),))
    whole = ipc.encode(BrokerChange(node, epoch, changeset))
    assert ipc.broker_change(node, epoch, encode_changeset(changeset)) == whole
    assert whole.startswith(ipc.change_prefix(node))
