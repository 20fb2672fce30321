"""Query windows kept up to date from changes alone, checked against re-running the query."""

from __future__ import annotations

import random
from typing import Any

import pytest

from rtdb.core.path import Path
from rtdb.core.query import Bound, QuerySpec
from rtdb.core.value import Node, child_at, children, normalize, replace_at, same
from rtdb.realtime.window import REFRESH, Merge, QueryWindow, Replace, relative_changes

SPECS = {
    "child limitToLast 2 startAt 10": QuerySpec("child", ("score",), Bound(10), None, 2, True),
    "child limitToFirst 3": QuerySpec("child", ("score",), None, None, 3, False),
    "child range 10..30 exclusive": QuerySpec("child", ("score",), Bound(10, None, False), Bound(30, None, False)),
    "key limitToFirst 2": QuerySpec("key", (), None, None, 2, False),
    "key range c..": QuerySpec("key", (), Bound("c"), None, None, False),
    "value limitToLast 3": QuerySpec("value", (), None, None, 3, True),
    "priority limitToFirst 2": QuerySpec("priority", (), None, None, 2, False),
    "nested child equalTo": QuerySpec("child", ("m", "x"), Bound(1), Bound(1)),
}
KEYS = list("abcdefgh")


def _expected(spec: QuerySpec, node: Node) -> dict[str, Node]:
    return dict(spec.apply(children(node)))


def _random_write(rng: random.Random, node: Node) -> tuple[Path, Node]:
    """A path relative to the query location and the value written there."""
    roll = rng.random()
    key = rng.choice(KEYS)
    if roll < 0.03:
        return (), normalize({k: {"score": rng.randint(0, 40)} for k in rng.sample(KEYS, rng.randint(0, 5))})
    if roll < 0.15:
        return (key,), None
    if roll < 0.35:
        return (key, "score"), rng.choice([None, rng.randint(0, 40), "s"])
    if roll < 0.45:
        return (key, "other"), rng.choice([None, rng.randint(0, 9)])
    if roll < 0.55:
        return (key, "m", "x"), rng.choice([None, 1, 2])
    if roll < 0.65:
        return (key,), rng.choice([1, 7, "v", True])
    if roll < 0.75:
        return (key,), normalize({".value": rng.randint(0, 5), ".priority": rng.choice([1, 2, "p"])})
    return (key,), normalize({"score": rng.randint(0, 40), "other": rng.randint(0, 3), ".priority": rng.randint(0, 3)})


def _apply_merge(view: dict[str, Node], entries: dict[str, Node]) -> dict[str, Node]:
    node: Node = dict(view) or None
    for rel, value in entries.items():
        node = replace_at(node, tuple(rel.split("/")), value)
    return dict(children(node))


@pytest.mark.parametrize("name", list(SPECS))
def test_window_matches_rerunning_the_query_after_every_write(name: str) -> None:
    spec = SPECS[name]
    rng = random.Random(name)
    for _round in range(30):
        data: Node = normalize({k: {"score": rng.randint(0, 40)} for k in rng.sample(KEYS, rng.randint(0, 8))})
        window = QueryWindow(spec, _expected(spec, data))
        view = _expected(spec, data)  # what the client holds for this tag
        for _ in range(40):
            rel, value = _random_write(rng, data)
            old = child_at(data, rel)
            data = replace_at(data, rel, value)
            new = child_at(data, rel)
            if same(old, new):
                continue
            update = window.apply([(rel, old, new)])
            want = _expected(spec, data)
            if update is REFRESH:
                window.reset(want)
                view = want
            elif isinstance(update, Replace):
                view = dict(children(update.node))
            elif isinstance(update, Merge):
                view = _apply_merge(view, update.entries)
            assert same(window.node(), want or None), (rel, value)
            assert same(view or None, want or None), (rel, value, update)


def test_window_changes_of_the_captured_session() -> None:
    """Step 11-12: orderByChild('score').startAt(10).limitToLast(2) on /scores, then set /scores/e."""
    spec = SPECS["child limitToLast 2 startAt 10"]
    data = normalize({"a": {"score": 5}, "b": {"score": 15}, "c": {"score": 25}, "d": {"score": 35}})
    window = QueryWindow(spec, _expected(spec, data))
    assert window.node() == {"c": {"score": 25}, "d": {"score": 35}}
    update = window.apply([(("e",), None, {"score": 50})])
    assert update == Merge({"c": None, "e": {"score": 50}})
    assert window.node() == {"d": {"score": 35}, "e": {"score": 50}}


def test_removal_from_a_full_window_asks_for_a_refresh() -> None:
    spec = QuerySpec("key", (), None, None, 2, False)
    window = QueryWindow(spec, {"a": 1, "b": 2})
    assert window.apply([(("a",), 1, None)]) is REFRESH


def test_removal_from_a_window_that_was_never_full_is_exact() -> None:
    spec = QuerySpec("key", (), None, None, 3, False)
    window = QueryWindow(spec, {"a": 1, "b": 2})
    assert window.apply([(("a",), 1, None)]) == Merge({"a": None})


def test_a_deep_edit_inside_the_window_sends_only_the_edited_leaf() -> None:
    spec = SPECS["child limitToFirst 3"]
    window = QueryWindow(spec, {"a": {"score": 1, "name": "x"}})
    assert window.apply([(("a", "name"), "x", "y")]) == Merge({"a/name": "y"})


def test_changes_above_the_query_location_are_seen_as_a_whole_replacement() -> None:
    rel = relative_changes(("scores",), [((), {"scores": {"a": 1}}, {"scores": {"a": 2}, "x": 1})])
    assert rel == [((), {"a": 1}, {"a": 2})]
    spec = QuerySpec("key", (), None, None, 5, False)
    window = QueryWindow(spec, {"a": 1})
    assert window.apply(rel) == Replace({"a": 2})
    assert window.apply(rel) is None


def _unused(x: Any) -> None:  # keep the typing import honest
    del x
