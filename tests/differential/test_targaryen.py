"""Differential check: the rules case files through targaryen (npm), a
Firebase rules simulator whose parser fixtures were recorded against live
Firebase. Cases where targaryen is known to be wrong (spec 5.3) or where we
chose differently carry a ``targaryen_skip`` reason."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
CASES = HERE.parent / "cases" / "rules"

pytestmark = [
    pytest.mark.skipif(
        not (HERE / "node_modules" / "targaryen").is_dir(),
        reason="targaryen is not installed: run `npm ci` in tests/differential",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH"),
]


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CASES / name).read_text())
    return loaded


EXPRESSIONS = _load("expressions.json")["cases"]
RULESETS = _load("rulesets.json")["cases"]
SCENARIOS = _load("operations.json")["scenarios"]


@pytest.fixture(scope="module")
def targaryen() -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(HERE / "run_targaryen.js")], capture_output=True, text=True, timeout=300, check=True
    )
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def _skip_if_known(case: dict[str, Any]) -> None:
    if "targaryen_skip" in case:
        pytest.skip(case["targaryen_skip"])


@pytest.mark.parametrize(
    "index", range(len(EXPRESSIONS)), ids=[f"{i:03d}:{c['rule'][:50]}" for i, c in enumerate(EXPRESSIONS)]
)
def test_expression_agrees(targaryen: dict[str, Any], index: int) -> None:
    case = EXPRESSIONS[index]
    _skip_if_known(case)
    assert targaryen["expressions"][index]["result"] == case["expect"], targaryen["expressions"][index]


@pytest.mark.parametrize(
    "index", range(len(RULESETS)), ids=[f"{i:03d}:{c['name'][:50]}" for i, c in enumerate(RULESETS)]
)
def test_ruleset_agrees(targaryen: dict[str, Any], index: int) -> None:
    case = RULESETS[index]
    if "rules" not in case:
        pytest.skip("raw rules text (comments, positions) is not sent to targaryen")
    _skip_if_known(case)
    assert targaryen["rulesets"][index]["result"] == case["valid"], targaryen["rulesets"][index]


OPS = [(s, o) for s, scenario in enumerate(SCENARIOS) for o in range(len(scenario["ops"]))]


@pytest.mark.parametrize(("scenario_index", "op_index"), OPS, ids=[f"{SCENARIOS[s]['name'][:45]}#{o}" for s, o in OPS])
def test_operation_agrees(targaryen: dict[str, Any], scenario_index: int, op_index: int) -> None:
    scenario = SCENARIOS[scenario_index]
    op = scenario["ops"][op_index]
    _skip_if_known(scenario)
    _skip_if_known(op)
    got = targaryen["operations"][scenario_index][op_index]
    assert got["result"] == op["expect"], got
