"""to_plain: what a REST GET (or a write's echo) shows of a node."""

from __future__ import annotations

import copy

from rtdb.core.value import normalize, to_plain


def test_a_plain_object_is_rendered_as_itself_not_copied() -> None:
    node = normalize({f"k{i}": {"name": f"n{i}", "ok": True} for i in range(1000)})
    assert to_plain(node) is node


def test_priorities_and_arrays_anywhere_make_a_copy_and_leave_the_node_alone() -> None:
    node = normalize({
        "a": {"x": 1},
        "b": {"list": ["p", "q"], "deep": {"v": {".value": 3, ".priority": 1}}},
        "c": {"y": 2, ".priority": "p"},
        ".priority": 5,
    })
    before = copy.deepcopy(node)
    plain = to_plain(node)
    assert plain == {"a": {"x": 1}, "b": {"list": ["p", "q"], "deep": {"v": 3}}, "c": {"y": 2}}
    assert plain["a"] is node["a"]  # unchanged children are shared
    assert node == before
    assert to_plain(normalize({"z": 1, "0": {"a": 1}, "s": {".value": "t", ".priority": 2}})) == {
        "z": 1, "0": {"a": 1}, "s": "t"}
