"""simulate(): one decision against an in-memory JSON database."""

from __future__ import annotations

import pytest

from rtdb.core.errors import InvalidData, InvalidQuery
from rtdb.core.query import parse_rest
from rtdb.rules import RulesError, Ruleset
from rtdb.rules.simulate import simulate

RULES = '{"rules": {"a": {".read": "query.limitToFirst == 1", ".write": "newData.val() == now"}}}'


def test_takes_rules_text_or_a_ruleset() -> None:
    assert simulate(RULES, None, None, "write", "/a", {".sv": "timestamp"}, now=5).allowed
    assert simulate(Ruleset.compile(RULES), None, None, "write", "/a", 5, now=5).allowed
    assert not simulate(RULES, None, None, "write", "/a", 4, now=5).allowed


def test_query_as_rest_parameters_or_a_query_spec() -> None:
    params = {"orderBy": '"$key"', "limitToFirst": "1"}
    assert simulate(RULES, None, None, "read", "/a", query=params).allowed
    assert simulate(RULES, None, None, "read", "/a", query=parse_rest(params)).allowed
    assert not simulate(RULES, None, None, "read", "/a").allowed


def test_bad_input_raises() -> None:
    with pytest.raises(RulesError):
        simulate("{", None, None, "read", "/")
    with pytest.raises(InvalidData):
        simulate(RULES, None, None, "write", "/a", {"b.c": 1})
    with pytest.raises(InvalidQuery):
        simulate(RULES, None, None, "read", "/a", query={"limitToFirst": "1"})
    with pytest.raises(TypeError):
        simulate(RULES, None, None, "update", "/", [1])
    with pytest.raises(ValueError):
        simulate(RULES, None, None, "delete", "/")  # type: ignore[arg-type]


def test_the_trace_explains_the_decision() -> None:
    decision = simulate(RULES, None, None, "write", "/a", 4, now=5)
    assert decision.trace[0] == "/rules/a/.write at /a: newData.val() == now → false [newData.val() = 4, now = 5]"
    assert decision.trace[-1] == "write denied at /a"


def test_query_params_take_the_sdk_names_too() -> None:
    from rtdb.rules.simulate import query_params

    assert query_params("orderByChild=age&startAt=18&limitToFirst=10") == {
        "orderBy": '"age"', "startAt": "18", "limitToFirst": "10"}
    assert query_params("orderByKey&equalTo=bob") == {"orderBy": '"$key"', "equalTo": '"bob"'}
    assert query_params('orderBy="$value"&endAt="m"') == {"orderBy": '"$value"', "endAt": '"m"'}
    assert parse_rest(query_params("orderByPriority&limitToLast=2")) == parse_rest(
        {"orderBy": '"$priority"', "limitToLast": "2"})
