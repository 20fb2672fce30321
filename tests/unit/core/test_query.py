import json
from pathlib import Path

import pytest

from rtdb.core.errors import InvalidQuery
from rtdb.core.query import parse_rest
from rtdb.core.value import children, normalize

SPEC = json.loads((Path(__file__).parents[2] / "cases/core/query.json").read_text())
DATA = normalize(SPEC["data"])


@pytest.mark.parametrize("case", SPEC["cases"], ids=[json.dumps(c["params"]) for c in SPEC["cases"]])
def test_rest_query(case: dict) -> None:
    if "error" in case:
        with pytest.raises(InvalidQuery, match=case["error"]):
            parse_rest(case["params"])
        return
    spec = parse_rest(case["params"])
    assert spec is not None
    assert [k for k, _ in spec.apply(children(DATA))] == case["keys"]


def test_no_query_parameters_is_a_plain_read() -> None:
    assert parse_rest({"print": "pretty"}) is None
