"""newData is a lazy overlay and snapshots read only what a rule asks for."""

from __future__ import annotations

from typing import Any

import pytest

from rtdb.core.value import child_at, normalize
from rtdb.rules import Ruleset
from rtdb.rules.errors import EvalError
from rtdb.rules.operators import equals
from rtdb.rules.snapshot import ObjectValue, Overlay, Snapshot, Tree


class CountingView:
    """A DataView that records every path it is asked for."""

    def __init__(self, data: Any) -> None:
        self.root = normalize(data)
        self.calls: list[tuple[str, ...]] = []

    def node(self, path: tuple[str, ...]) -> Any:
        self.calls.append(path)
        return child_at(self.root, path)


class ShallowView(CountingView):
    def __init__(self, data: Any) -> None:
        super().__init__(data)
        self.shallow_calls: list[tuple[str, ...]] = []

    def shallow(self, path: tuple[str, ...]) -> Any:
        self.shallow_calls.append(path)
        node = child_at(self.root, path)
        if isinstance(node, dict) and ".value" not in node:
            return {k: (v if k == ".priority" else True) for k, v in node.items()}
        return node


BIG = {"users": {f"u{i}": {"name": f"n{i}", "bio": "x" * 10} for i in range(50)}, "other": 1}


def test_data_child_val_reads_only_that_child() -> None:
    view = CountingView(BIG)
    rules = Ruleset.compile('{"rules": {"users": {"$uid": {".read": "data.child(\'name\').val() == \'n1\'"}}}}')
    assert rules.can_read(("users", "u1"), auth=None, root=view, now=0).allowed
    assert view.calls == [("users", "u1", "name")]


def test_validate_on_an_ancestor_of_a_write_reads_nothing() -> None:
    view = CountingView(BIG)
    rules = Ruleset.compile('{"rules": {".write": true, ".validate": "newData.exists() && newData.hasChildren()"}}')
    decision = rules.can_write(("users", "u9", "name"), "z", auth=None, root=view, now=0)
    assert decision.allowed, decision.trace
    assert view.calls == []


def test_new_data_outside_the_write_reads_only_the_child_asked_for() -> None:
    view = CountingView(BIG)
    rules = Ruleset.compile('{"rules": {".write": true, ".validate": "newData.child(\'other\').val() == 1"}}')
    assert rules.can_write(("users", "u1", "name"), "z", auth=None, root=view, now=0).allowed
    assert view.calls == [("other",)]


def test_repeated_reads_of_one_location_hit_the_view_once() -> None:
    view = CountingView(BIG)
    rules = Ruleset.compile(
        "{\"rules\": {\".read\": \"root.child('users/u1').exists() && root.child('users/u1/name').val() == 'n1'\"}}"
    )
    assert rules.can_read(("users",), auth=None, root=view, now=0).allowed
    assert view.calls == [("users", "u1")]


def test_a_view_with_shallow_answers_exists_without_reading_the_subtree() -> None:
    view = ShallowView(BIG)
    rules = Ruleset.compile('{"rules": {".read": "data.exists() && data.hasChildren() && data.val() != null"}}')
    assert rules.can_read((), auth=None, root=view, now=0).allowed
    assert view.calls == []
    assert view.shallow_calls == [()]


def test_overlay_knows_whether_a_parent_survives_a_delete() -> None:
    base = Tree(CountingView({"w": {"a": 1, "b": 2}}))
    assert Overlay(base, [(("w", "a"), None)]).exists(("w",))
    assert not Overlay(base, [(("w", "a"), None), (("w", "b"), None)]).exists(("w",))
    assert Overlay(base, [(("w", "a"), None)]).node(("w",)) == {"b": 2}


def test_overlay_applies_writes_in_order() -> None:
    base = Tree(CountingView(None))
    new = Overlay(base, [(("a",), {"x": 1, "y": 2}), (("a", "y"), 3)])
    assert new.node(("a",)) == {"x": 1, "y": 3}
    assert new.node(("a", "y")) == 3
    assert new.leaf(("a",)).__class__ is ObjectValue


def test_overlay_keeps_the_priority_of_a_node_written_below() -> None:
    base = Tree(CountingView({"a": {"x": 1, ".priority": 7}}))
    new = Overlay(base, [(("a", "y"), 2)])
    assert new.priority(("a",)) == 7
    assert new.node(("a",)) == {"x": 1, "y": 2, ".priority": 7}


def test_snapshot_navigation() -> None:
    root = Snapshot(Tree(CountingView({"a": {"b": 1}})), ())
    assert root.child("a/b").val() == 1
    assert root.child("/a//b/").val() == 1
    assert root.child("a.b").path is None and not root.child("a.b").exists()
    assert root.child("a.b").parent().path is None
    assert root.child("a").child("b").parent().parent().path == ()
    with pytest.raises(EvalError):
        root.parent()
    with pytest.raises(EvalError):
        root.child(None)
    with pytest.raises(EvalError):
        root.has_children(["a", 1])


def test_val_of_an_object_equals_nothing_but_itself() -> None:
    root = Snapshot(Tree(CountingView({"a": {"b": 1}})), ())
    first, second = root.child("a").val(), root.child("a").val()
    assert isinstance(first, ObjectValue)
    assert not equals(first, second)
    assert equals(first, first)
    assert not equals(first, None)


SINGLE_BASE = {"w": {"a": 1, "b": {"c": "x", ".priority": 2}, ".priority": "p"}, "leaf": {".value": 3, ".priority": 1}}
SINGLE_WRITES: list[tuple[tuple[str, ...], Any]] = [
    (("w",), {"a": 2, "n": {"m": True}}),
    (("w", "b"), {"c": "y", "d": {".value": 1, ".priority": 5}}),
    (("w", "b", "c"), None),
    (("w",), None),
    (("leaf", "x"), 1),
    (("new", "deep"), {"k": "v"}),
    ((), {"only": 1}),
]
SINGLE_PATHS = [(), ("w",), ("w", "a"), ("w", "b"), ("w", "b", "c"), ("w", "b", "d"), ("w", "n", "m"), ("leaf",),
                ("leaf", "x"), ("new",), ("new", "deep", "k"), ("only",), ("elsewhere",)]  # fmt: skip


def _plain(value: Any) -> Any:
    return "<object>" if isinstance(value, ObjectValue) else value


@pytest.mark.parametrize("write", SINGLE_WRITES)
def test_a_single_write_overlay_answers_as_the_general_one(write: tuple[tuple[str, ...], Any]) -> None:
    """The same write twice takes the general way; once, the single-write way."""
    path, value = write[0], normalize(write[1])
    for at in SINGLE_PATHS:
        one = Overlay(Tree(CountingView(SINGLE_BASE)), [(path, value)])
        general = Overlay(Tree(CountingView(SINGLE_BASE)), [(path, value), (path, value)])
        assert one.exists(at) == general.exists(at), at
        assert _plain(one.leaf(at)) == _plain(general.leaf(at)), at
        assert one.has_children(at) == general.has_children(at), at
        assert one.priority(at) == general.priority(at), at
        assert one.node(at) == general.node(at), at
        for below in [("a",), ("b", "c"), ("m",), ("x",)]:
            assert one.exists_below(at, below) == general.exists(at + below), (at, below)
            assert _plain(one.leaf_below(at, below)) == _plain(general.leaf(at + below)), (at, below)


def test_a_single_write_overlay_reads_below_a_known_node_without_the_base() -> None:
    view = CountingView(SINGLE_BASE)
    new = Overlay(Tree(view), [(("w",), normalize({"a": 2, "n": {"m": True}}))])
    at = ("w", "n")
    new.known(at, {"m": True})
    assert new.exists_below(at, ("m",)) and new.leaf_below(at, ("m",)) is True
    assert new.leaf(at).__class__ is ObjectValue and not new.exists_below(at, ("z",))
    assert new.exists(("w",)) and new.leaf(("w", "a")) == 2
    assert view.calls == []
