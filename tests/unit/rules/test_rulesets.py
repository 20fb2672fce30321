"""Rules files from tests/cases/rules/rulesets.json: what loads, what is
refused, and where the error is reported."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtdb.rules import RulesError, Ruleset

from .cases import load, params

CASES = load("rulesets.json")["cases"]


def _source(case: dict[str, Any]) -> str:
    return case["source"] if "source" in case else json.dumps(case["rules"])


@pytest.mark.parametrize("case", params(CASES, "name"))
def test_ruleset(case: dict[str, Any]) -> None:
    source = _source(case)
    if case["valid"]:
        assert Ruleset.compile(source).source == source
        return
    with pytest.raises(RulesError) as info:
        Ruleset.compile(source)
    assert info.value.code == "invalid_rules"
    assert case.get("error", "") in info.value.message


def test_open_and_closed_rulesets() -> None:
    class Empty:
        def node(self, path: tuple[str, ...]) -> Any:
            return None

    for ruleset, allowed in ((Ruleset.open(), True), (Ruleset.closed(), False)):
        assert ruleset.can_read(("a",), auth=None, root=Empty(), now=0).allowed is allowed
        assert ruleset.can_write(("a",), 1, auth=None, root=Empty(), now=0).allowed is allowed


def test_error_carries_rule_path_line_and_column() -> None:
    with pytest.raises(RulesError) as info:
        Ruleset.compile('{"rules": {"a": {".read": "zz == 1"}}}')
    assert (info.value.rule_path, info.value.line, info.value.column) == ("/rules/a/.read", 1, 28)
    assert info.value.message == '/rules/a/.read: 1:28: Unknown variable "zz"'


def test_index_on_matches_wildcards_and_literals() -> None:
    ruleset = Ruleset.compile(
        '{"rules": {"scores": {".indexOn": ".value"}, "rooms": {"$room": {"messages": {".indexOn": ["ts", "uid"]}}}}}'
    )
    assert ruleset.index_on(("scores",)) == (".value",)
    assert ruleset.index_on(("rooms", "r1", "messages")) == ("ts", "uid")
    assert ruleset.index_on(("rooms", "r1")) == ()
    assert ruleset.index_on(("nowhere", "x")) == ()
