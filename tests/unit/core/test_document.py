"""A document walked piece by piece validates and normalizes exactly as ``normalize`` does with
the whole of it: the same node, or the same first error. Small thresholds make every object
of these documents "large", so that each is split into runs of children."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtdb.core.document import MalformedJson, check_json, count_leaves, walk
from rtdb.core.errors import RtdbError
from rtdb.core.path import MAX_DEPTH, Path
from rtdb.core.servervalue import resolve
from rtdb.core.value import PRIORITY, Node, normalize

SMALLS = (1, 24, 200, 10**9)  # every object large; some; none (the document whole)


class Tree:
    """A sink that builds the node back from the walk, as the store would lay it out."""

    def __init__(self) -> None:
        self.node: Node = None
        self.stack: list[tuple[Path, dict[str, Any], Any]] = []
        self.events: list[str] = []

    def whole(self, node: Node) -> None:
        self.events.append("whole")
        self.node = node

    def open(self, path: Path, priority: Any) -> None:
        self.events.append("open")
        if self.stack:
            assert path[:-1] == self.stack[-1][0]
        self.stack.append((path, {}, priority))

    def children(self, path: Path, kids: dict[str, Node]) -> None:
        assert kids and None not in kids.values()
        top, got, _ = self.stack[-1]
        assert path == top and not kids.keys() & got.keys()
        got.update(kids)

    def close(self, path: Path) -> None:
        top, kids, priority = self.stack.pop()
        assert path == top
        node = None if not kids else kids if priority is None else {**kids, PRIORITY: priority}
        if self.stack:
            if node is not None:
                self.stack[-1][1][path[-1]] = node
        else:
            self.node = node


def walked(document: bytes, base: Path = (), small: int = 1, **kw: Any) -> Node:
    tree = Tree()
    leaves = walk(check_json(document), base, tree, small=small, **kw)
    assert not tree.stack
    assert leaves == count_leaves(tree.node)
    return tree.node


def outcome(fn: Any) -> Any:
    try:
        return "ok", fn()
    except RtdbError as exc:
        return type(exc), exc.message


def assert_walks_as_normalize(document: Any, base: Path = ()) -> None:
    text = json.dumps(document).encode() if not isinstance(document, bytes) else document
    expected = outcome(lambda: normalize(msgspec.json.decode(text), base))
    for small in SMALLS:
        assert outcome(lambda: walked(text, base, small)) == expected, small  # noqa: B023


def nest(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = {f"k{i}": leaf}
    return leaf


@pytest.mark.parametrize("document", [
    42, "text", True, None, 1.5, 2**60, [], {}, [None, {}], {"a": None},
    {".priority": 5, "a": {"x": 1, "y": [1, 2]}, "b": {".priority": "p", "c": {"d": True}}},
    {".priority": {".sv": "timestamp"}, "a": 1},
    {"a": {".value": "long string " * 5, ".priority": 1}, "b": 2},
    {".value": "long string " * 5, ".priority": 1},
    {".value": "x", "other": 1},
    {".value": {"a": 1}},
    {".value": [1]},
    {".value": None, ".priority": 3},
    {".value": {".sv": "timestamp"}, ".priority": 3},
    {"a": {".sv": "timestamp"}, "b": {"c": {"d": {".sv": {"increment": 2}}}}},
    {".sv": "timestamp", "a": 1},
    {"a": {".sv": "yesterday"}},
    {".sv": {"increment": 1}},
    {"list": list(range(30)), "sparse": [None, None, 3], "nested": [[1, [2, {"a": [3]}]]]},
    [{"a": 1}, None, {"b": [None, {}]}, "x"],
    {"a": None, "b": {}, "c": {"d": None, "e": {"f": {}}}, "g": [None, []]},
    {"a": {"b": None, "c": {}}, ".priority": 7},
    {"ok": {"many": list(range(20))}, "deep": {"inside": {"bad.key": 1}}},
    {"first": {"bad#key": 1}, "then": {"deep": nest(40, 1)}},
    {"first": nest(40, 1), "then": {"bad/key": 1}},
    {"a": 1, "b": {"$x": 1}},
    {"a": {".priority": True, "b": 1}},
    {"a": {".priority": [1], "b": {"c#": 1}}},
    {"\u0000": 1},
    {"k" * 700: {"k" * 100: 1}},
    {"k" * 760: {"a": 1, "b": {"c": 2}}},
    {"a": float(2**53) + 2, "b": -0.0, "c": 2**53 + 1, "d": 1e300},
    nest(MAX_DEPTH, "at the limit"),
    nest(MAX_DEPTH + 1, "past it"),
    nest(MAX_DEPTH + 1, None),
    {"a": nest(MAX_DEPTH, {".priority": 1})},
])
def test_a_walked_document_is_what_normalize_makes_of_it(document: Any) -> None:
    assert_walks_as_normalize(document)


@pytest.mark.parametrize("base", [("a",), tuple(f"k{i}" for i in range(30)), ("x" * 700,)])
def test_depth_and_path_length_count_from_the_base(base: Path) -> None:
    for document in (nest(2, 1), nest(3, 1), {"y" * 60: {"z": 1}}, {"a": [1, {"b": 2}]}):
        assert_walks_as_normalize(document, base)


def test_duplicate_keys_keep_the_last_value_in_the_first_place() -> None:
    assert_walks_as_normalize(b'{"a": {"x": 1}, "b": 2, "a": {"y": [1, 2, 3]}}')


def test_server_values_are_finished_at_their_own_paths() -> None:
    document = {".priority": {".sv": "timestamp"}, "a": {"b": {".sv": "timestamp"}, "c": [{".sv": {"increment": 5}}]},
                "d": {".value": 1, ".priority": {".sv": "timestamp"}}}
    old: dict[Path, Any] = {("a", "c", "0"): 10}
    text = json.dumps(document).encode()
    expected = resolve(normalize(document), (), 1234, lambda at: old.get(at))
    for small in SMALLS:
        got = walked(text, (), small, finish=lambda at, node: resolve(node, at, 1234, lambda p: old.get(p)))
        assert got == expected
    assert expected["a"]["c"]["0"] == 15 and expected[PRIORITY] == 1234


def test_a_document_that_is_one_leaf_comes_whole() -> None:
    tree = Tree()
    assert walk(check_json(b' "' + b"x" * 1000 + b'" '), ("a",), tree, small=1) == 1
    assert tree.events == ["whole"] and tree.node == "x" * 1000


def test_a_large_document_is_split_into_runs_of_children() -> None:
    document = {f"k{i:03d}": {"n": i, "s": "text " * 10} for i in range(100)}
    tree = Tree()
    runs: list[int] = []
    walk(check_json(json.dumps(document).encode()), (), tree, small=1000,
         progress=lambda done, leaves: runs.append(leaves))
    assert tree.events[0] == "open" and len(runs) > 5 and runs[-1] == 200
    assert tree.node == normalize(document)


def test_json_that_only_a_full_decode_refuses_is_malformed_when_its_run_is_decoded() -> None:
    text = b'{"a": {"b": 1}, "c": {"d": 1e999}}'
    check_json(text)  # the syntax is fine
    with pytest.raises(MalformedJson):
        walked(text, (), 1)
    with pytest.raises(MalformedJson):
        walked(b'{"a": {"b": "\xff"}}', (), 1)


@pytest.mark.parametrize(("text", "error"), [
    (b'{"a": [1, 2}', MalformedJson),
    (b'{"a": 1} x', MalformedJson),
    (b'{"a": "\\q"}', MalformedJson),
    (b"[" * 5000 + b"]" * 5000, RtdbError),
])
def test_check_json_reads_the_whole_document(text: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_json(b'{"big": "' + b"x" * 10_000 + b'", "rest": ' + text + b"}")


# random documents: keys that may be invalid or special, values of every kind
KEYS = st.sampled_from(["a", "b", "0", "1", "2", "10", "-1", "k.y", "$k", ".priority", ".value", ".sv", "é", "x" * 40])
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                   st.just({".sv": "timestamp"}), st.just({".sv": {"increment": 2}}))
DOCUMENTS = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                         st.dictionaries(KEYS, inner, max_size=6)), max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS, st.sampled_from([(), ("a",), tuple(f"k{i}" for i in range(29))]))
def test_random_documents_walk_as_normalize_makes_them(document: Any, base: Path) -> None:
    assert_walks_as_normalize(document, base)
