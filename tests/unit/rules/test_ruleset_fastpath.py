"""Open write rules (`.write: true` at the root, no `.validate` anywhere) skip evaluation;
anything less open is still evaluated in full."""

from __future__ import annotations

import pytest

from rtdb.rules import Ruleset

EMPTY_ROOT: dict[str, object] = {}


class NoData:
    """A data view that must not be read: the fast path decides without data."""

    def node(self, path: tuple[str, ...]) -> object:
        raise AssertionError("read data")

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"read data ({name})")


def decide(rules: str, path: tuple[str, ...], value: object, root: object) -> bool:
    ruleset = Ruleset.compile(rules)
    return ruleset.can_write(path, value, auth=None, root=root, now=0).allowed  # type: ignore[arg-type]


def test_open_write_rules_decide_without_reading_data() -> None:
    assert decide('{"rules": {".write": true}}', ("a", "b"), {"x": 1}, NoData())
    assert decide('{"rules": {".write": "true", ".read": "auth != null"}}', ("a",), None, NoData())
    ruleset = Ruleset.compile('{"rules": {".write": true}}')
    assert ruleset.can_update(("a",), {("x",): 1}, auth=None, root=NoData(), now=0).allowed  # type: ignore[arg-type]


@pytest.mark.parametrize("rules", [
    '{"rules": {".write": true, "a": {"$k": {".validate": "newData.isNumber()"}}}}',
    '{"rules": {".write": true, ".validate": "newData.hasChildren()"}}',
    '{"rules": {".write": "auth != null"}}',
    '{"rules": {"a": {".write": true}}}',
])
def test_anything_less_open_is_evaluated(rules: str) -> None:
    with pytest.raises(AssertionError, match="read data"):
        decide(rules, ("a", "k"), "text", NoData())
