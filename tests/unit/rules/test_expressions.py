"""Rule expressions from tests/cases/rules/expressions.json: type checks at
load, values at run time, runtime errors as false."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtdb.core.query import parse_rest
from rtdb.core.value import normalize
from rtdb.rules import RulesError, Ruleset
from rtdb.rules.compiler import compile_rule
from rtdb.rules.errors import EvalError, ExpressionError
from rtdb.rules.simulate import MemoryView
from rtdb.rules.snapshot import Snapshot, Tree
from rtdb.rules.variables import Env, query_variables

from .cases import load, params

DOC = load("expressions.json")
CASES = DOC["cases"]
NOW = 1_500_000_000_000


def _env(case: dict[str, Any]) -> Env:
    old = Tree(MemoryView(normalize(case.get("data"))))
    new = Tree(MemoryView(normalize(case.get("newData"))))
    query = parse_rest(case["query"]) if "query" in case else None
    return Env(
        auth=DOC["users"].get(case.get("auth", "")),
        now=case.get("now", NOW),
        root=Snapshot(old, ()),
        data=Snapshot(old, ()),
        new_data=Snapshot(new, ()),
        query=query_variables(query),
        captures=case.get("wildcards", {}),
    )


@pytest.mark.parametrize("case", params(CASES, "rule"))
def test_expression(case: dict[str, Any]) -> None:
    captures = tuple(case.get("wildcards", {}))
    write = case.get("write", False)
    if case["expect"] == "invalid":
        with pytest.raises(ExpressionError):
            compile_rule(case["rule"], captures=captures, write=write)
        return
    rule = compile_rule(case["rule"], captures=captures, write=write)
    if case["expect"] == "error":
        with pytest.raises(EvalError):
            rule.fn(_env(case))
        either = compile_rule(f"({case['rule']}) || true", captures=captures, write=write)
        allowed, error = either.evaluate(_env(case))
        assert allowed is False and error
        return
    assert rule.fn(_env(case)) is case["expect"]


@pytest.mark.parametrize("case", params([c for c in CASES if c["expect"] != "invalid"], "rule"))
def test_fast_and_explaining_forms_agree(case: dict[str, Any]) -> None:
    """The fast form (the engine's) and the explaining form give the same value or both fail."""
    rule = compile_rule(case["rule"], captures=tuple(case.get("wildcards", {})), write=case.get("write", False))
    assert rule.noted_fn is not None
    env = _env(case)
    env.notes = []
    assert _outcome(rule.fn, _env(case)) == _outcome(rule.noted_fn, env)


def _outcome(fn: Any, env: Env) -> Any:
    try:
        return fn(env)
    except EvalError:
        return "error"


def _as_ruleset(case: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The case as a rules file: the rule sits below one node per wildcard."""
    kind = ".write" if case.get("write") else ".read"
    node: dict[str, Any] = {kind: case["rule"]}
    wildcards = case.get("wildcards", {})
    for name in reversed(list(wildcards)):
        node = {name: node}
    return json.dumps({"rules": node}), tuple(wildcards.values())


@pytest.mark.parametrize("case", params([c for c in CASES if not c.get("write")], "rule"))
def test_expression_as_read_rule(case: dict[str, Any]) -> None:
    source, path = _as_ruleset(case)
    if case["expect"] == "invalid":
        with pytest.raises(RulesError) as info:
            Ruleset.compile(source)
        assert info.value.code == "invalid_rules"
        assert info.value.message.startswith("/rules/")
        return
    ruleset = Ruleset.compile(source)
    env = _env(case)
    decision = ruleset.can_read(
        path,
        auth=env.auth,
        root=MemoryView(normalize(case.get("data"))),
        now=env.now,
        query=parse_rest(case["query"]) if "query" in case else None,
        explain=True,
    )
    assert decision.allowed is (case["expect"] is True)
    if case["expect"] == "error":
        assert "error:" in decision.trace[0]
