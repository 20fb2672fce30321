"""PathMap: one value per path; entries above, below and between paths without scanning."""

from __future__ import annotations

from rtdb.core.pathmap import PathMap


def test_set_get_pop_and_size() -> None:
    m: PathMap[str] = PathMap()
    m.set(("a", "b"), "ab")
    m.set((), "root")
    m.set(("a", "b"), "ab2")
    assert len(m) == 2
    assert m.get(("a", "b")) == "ab2" and m.get(()) == "root"
    assert m.get(("a",)) is None and m.get(("x", "y")) is None
    assert m.pop(("a", "b")) == "ab2" and m.pop(("a", "b")) is None
    assert len(m) == 1
    assert list(m.items()) == [((), "root")]


def test_popping_prunes_the_trie_so_nothing_is_left_behind() -> None:
    m: PathMap[int] = PathMap()
    m.set(("a", "b", "c"), 1)
    m.pop(("a", "b", "c"))
    assert list(m.descendants(())) == [] and m._root.kids == {}


def test_ancestors_are_shallowest_first_and_include_the_path() -> None:
    m: PathMap[int] = PathMap()
    for depth, path in enumerate([(), ("a",), ("a", "b"), ("a", "b", "c"), ("a", "x")]):
        m.set(path, depth)
    assert list(m.ancestors(("a", "b", "c", "d"))) == [((), 0), (("a",), 1), (("a", "b"), 2), (("a", "b", "c"), 3)]
    assert m.has_ancestor_or_self(("q",))
    m.pop(())
    assert not m.has_ancestor_or_self(("q",))


def test_descendants_are_depth_first_in_insertion_order() -> None:
    m: PathMap[str] = PathMap()
    for path in [("a", "z"), ("a", "b"), ("a", "b", "c"), ("a", "m"), ("other",)]:
        m.set(path, "/".join(path))
    assert [v for _, v in m.descendants(("a",))] == ["a/z", "a/b", "a/b/c", "a/m"]
    assert [p for p, _ in m.descendants(("a", "b"))] == [("a", "b", "c")]


def test_between_is_below_top_down_to_the_path() -> None:
    m: PathMap[str] = PathMap()
    for path in [("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "c", "d"), ("a", "x")]:
        m.set(path, "/".join(path))
    assert [v for _, v in m.between(("a",), ("a", "b", "c"))] == ["a/b", "a/b/c"]
    assert list(m.between(("a", "b", "c"), ("a", "b", "c"))) == []
    assert list(m.between(("q",), ("q", "r"))) == []
