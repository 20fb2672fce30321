"""Pending writes: order, overlap and the visible overlay."""

from __future__ import annotations

import pytest

from rtdb_sdk.writetree import Write, WriteTree


def test_overlay_applies_overlapping_writes_in_order() -> None:
    writes = WriteTree()
    writes.add(Write(1, ("a", "b"), node=1))
    writes.add(Write(2, ("a",), node={"c": 2}))
    writes.add(Write(3, ("a",), children={("d",): 3, ("c",): None}))
    writes.add(Write(4, ("z",), node=9))
    assert writes.overlay({"x": 0}, ("a",)) == {"d": 3}
    assert [w.id for w in writes.overlapping(("a", "b"))] == [1, 2]
    assert writes.covers(("a", "b", "q")) and not writes.covers(("b",))
    writes.remove(2)
    assert writes.overlay({"x": 0}, ("a",)) == {"x": 0, "b": 1, "d": 3}
    assert writes.has_below(("a",)) and not writes.has_below(("q",))


def test_removing_every_write_empties_the_index() -> None:
    writes = WriteTree()
    for i in range(1, 4):
        writes.add(Write(i, ("a", str(i)), node=i))
    for i in range(1, 4):
        assert writes.remove(i) is not None
    assert len(writes) == 0 and writes.overlapping(()) == []
    assert writes.remove(1) is None


def test_write_ids_must_increase() -> None:
    writes = WriteTree()
    writes.add(Write(2, ("a",), node=1))
    with pytest.raises(ValueError):
        writes.add(Write(1, ("b",), node=1))
