"""Declared indexes read one way: `.indexOn` entries, `--index` flags, pattern matching."""

from __future__ import annotations

import pytest

from rtdb.core.errors import InvalidPath
from rtdb.core.indexspec import VALUE, check_child, child_spec, covers, index_child, names, order_child
from rtdb.core.query import QuerySpec


def test_an_index_child_and_its_spelling_round_trip() -> None:
    for spec, child in [(".value", VALUE), ("score", ("score",)), ("meta/score", ("meta", "score"))]:
        assert index_child(spec) == child
        assert check_child(spec) == child
        assert child_spec(child) == spec


def test_only_the_checked_reading_refuses_a_child_that_is_no_path() -> None:
    assert index_child("a.b") == ("a.b",)  # rules deployed before keep working as they did
    with pytest.raises(InvalidPath):
        check_child("a.b")


def test_a_pattern_names_locations_of_its_own_depth_and_covers_their_ancestors() -> None:
    pattern = ("rooms", "$room", "messages")
    assert names(pattern, ("rooms", "r1", "messages"))
    assert not names(pattern, ("rooms", "r1"))
    assert not names(pattern, ("rooms", "r1", "other"))
    assert covers(pattern, ("rooms", "r1"))
    assert covers(pattern, ())
    assert not covers(pattern, ("users",))
    assert not covers(pattern, ("rooms", "r1", "messages", "m1"))


def test_only_child_and_value_orders_need_an_index() -> None:
    assert order_child(QuerySpec(order_by="child", child=("a", "b"))) == ("a", "b")
    assert order_child(QuerySpec(order_by="value")) == VALUE
    assert order_child(QuerySpec(order_by="key")) is None
    assert order_child(QuerySpec(order_by="priority")) is None
