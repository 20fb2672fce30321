import json
from pathlib import Path

import pytest

from rtdb.core.hash import NULL_ETAG, etag, node_hash
from rtdb.core.value import normalize

CASES = json.loads((Path(__file__).parents[2] / "cases/core/hash.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[json.dumps(c["value"])[:40] for c in CASES])
def test_node_hash_matches_the_official_sdk(case: dict) -> None:
    assert node_hash(normalize(case["value"])) == case["hash"]


def test_etag_of_absent_value_is_null_etag() -> None:
    assert etag(None) == NULL_ETAG
    assert etag(normalize({"a": 1})) == "gIphxiFGusLh2VwSNVKSvNu90m4="
