"""The sync tree as data: every scenario of tests/cases/sdk/*.json, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from .scenario import Runner, load_scenarios

SCENARIOS = load_scenarios()


@pytest.mark.parametrize("scenario", [s for _, s in SCENARIOS], ids=[n for n, _ in SCENARIOS])
def test_scenario(scenario: dict[str, Any]) -> None:
    Runner().run(scenario)


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 40


def test_the_runner_fails_on_a_wrong_expectation() -> None:
    wrong = {
        "name": "wrong on purpose",
        "steps": [
            {"op": "listen", "as": "L", "path": "a", "types": ["value"]},
            {"op": "complete", "path": "a", "events": [{"L": "L", "type": "value", "data": 1}]},
        ],
    }
    with pytest.raises(AssertionError, match="events"):
        Runner().run(wrong)
    missing = {
        "name": "an event too few",
        "steps": [{"op": "listen", "as": "L", "path": "a"}, {"op": "complete", "path": "a"}],
    }
    with pytest.raises(AssertionError):
        Runner().run(missing)
