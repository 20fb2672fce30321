"""Read/write/update decisions from tests/cases/rules/operations.json, run
through :func:`rtdb.rules.simulate.simulate`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rtdb.core.errors import InvalidPath
from rtdb.rules import Ruleset
from rtdb.rules.simulate import simulate

from .cases import load

SCENARIOS = load("operations.json")["scenarios"]
NOW = 1_500_000_000_000
_STEP = re.compile(r"^/rules(?:/\S*)?/(\.\w+) at (/\S*?)[ :]")


def _ops() -> list[Any]:
    out = []
    for scenario in SCENARIOS:
        ruleset = Ruleset.compile(scenario["source"] if "source" in scenario else json.dumps(scenario["rules"]))
        for i, op in enumerate(scenario["ops"]):
            label = f"{scenario['name'][:50]}#{i}:{op['op']} {op['path']}"
            out.append(pytest.param(scenario, ruleset, op, id=label))
    return out


def evaluated(trace: list[str]) -> list[str]:
    """The rules a decision ran, as '<type> <data path>'."""
    return [f"{m[1]} {m[2]}" for line in trace if (m := _STEP.match(line))]


@pytest.mark.parametrize(("scenario", "ruleset", "op"), _ops())
def test_operation(scenario: dict[str, Any], ruleset: Ruleset, op: dict[str, Any]) -> None:
    def run() -> Any:
        return simulate(
            ruleset,
            op.get("data", scenario.get("data")),
            op["auth"] if "auth" in op else scenario.get("auth"),
            op["op"],
            op["path"],
            op.get("value"),
            now=op.get("now", scenario.get("now", NOW)),
            query=op.get("query"),
        )

    if op["expect"] == "invalid_path":
        with pytest.raises(InvalidPath):
            run()
        return
    decision = run()
    assert decision.allowed is op["expect"], "\n".join(decision.trace)
    if "evaluated" in op:
        assert evaluated(decision.trace) == op["evaluated"]
    if "trace_contains" in op:
        assert any(op["trace_contains"] in line for line in decision.trace), decision.trace


@pytest.mark.parametrize(("scenario", "ruleset", "op"), _ops())
def test_operation_decided_without_explanation_agrees(
    scenario: dict[str, Any], ruleset: Ruleset, op: dict[str, Any]
) -> None:
    """The engine decides with the fast compiled form: it must reach the same answer."""
    if op["expect"] == "invalid_path":
        return
    decision = simulate(
        ruleset,
        op.get("data", scenario.get("data")),
        op["auth"] if "auth" in op else scenario.get("auth"),
        op["op"],
        op["path"],
        op.get("value"),
        now=op.get("now", scenario.get("now", NOW)),
        query=op.get("query"),
        explain=False,
    )
    assert decision.allowed is op["expect"]
