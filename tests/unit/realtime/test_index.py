"""The listener trie: walking a written path finds exactly the listeners it concerns."""

from __future__ import annotations

from rtdb.realtime.index import PathIndex


def _index(*paths: tuple[str, ...]) -> PathIndex[str]:
    index: PathIndex[str] = PathIndex()
    for p in paths:
        index.add(p, "/" + "/".join(p))
    return index


def test_along_yields_root_ancestors_and_self_only() -> None:
    index = _index((), ("a",), ("a", "b"), ("a", "b", "c"), ("a", "x"), ("z",))
    assert [lis for _, lis in index.along(("a", "b"))] == ["/", "/a", "/a/b"]


def test_below_yields_every_descendant_and_nothing_else() -> None:
    index = _index(("a",), ("a", "b"), ("a", "b", "c", "d"), ("a", "x"), ("ab",))
    assert sorted(lis for _, lis in index.below(("a",))) == ["/a/b", "/a/b/c/d", "/a/x"]
    assert list(index.below(("nothing",))) == []


def test_between_yields_listeners_strictly_below_top_down_to_path() -> None:
    index = _index(("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "c", "d"))
    assert [lis for _, lis in index.between(("a",), ("a", "b", "c"))] == ["/a/b", "/a/b/c"]


def test_remove_prunes_empty_branches() -> None:
    index = _index(("a", "b", "c"), ("a",))
    assert index.remove(("a", "b", "c"), "/a/b/c")
    assert not index.remove(("a", "b", "c"), "/a/b/c")
    assert len(index) == 1
    assert index._map._root.kids["a"].kids == {}


def test_walks_do_not_visit_unrelated_listeners() -> None:
    index: PathIndex[int] = PathIndex()
    for i in range(10_000):
        index.add(("rooms", str(i), "messages"), i)
    hit = [lis for _, lis in index.along(("rooms", "42", "messages", "m1"))]
    hit += [lis for _, lis in index.below(("rooms", "42", "messages", "m1"))]
    assert hit == [42]
