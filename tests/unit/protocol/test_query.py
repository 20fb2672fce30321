"""Wire query objects → QuerySpec, evaluated against the captured data (spec 5.2, 5.3)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from rtdb.core.errors import InvalidQuery
from rtdb.core.value import children, normalize
from rtdb.protocol.messages import WireQuery
from rtdb.protocol.query import DEFAULT_QUERY_ID, from_spec, query_id, to_spec

from .cases import load_cases

CASES = load_cases("queries.json")


def _wire(q: dict[str, Any]) -> WireQuery:
    return msgspec.convert(q, WireQuery)


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: c["name"])
def test_wire_query_selects_the_captured_children(case: dict[str, Any]) -> None:
    spec = to_spec(_wire(case["q"]))
    assert spec is not None
    if "spec" in case:
        want = case["spec"]
        assert spec.order_by == want["order_by"]
        assert list(spec.child) == want["child"]
        for name in ("start", "end"):
            bound = getattr(spec, name)
            assert (None if bound is None else [bound.value, bound.key, bound.inclusive]) == want[name]
        assert spec.limit == want["limit"] and spec.from_last == want["from_last"]
    node = normalize(CASES["data"][case["data"]])
    assert [k for k, _ in spec.apply(children(node))] == case["keys"]


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: c["name"])
def test_from_spec_round_trips_to_the_same_selection(case: dict[str, Any]) -> None:
    spec = to_spec(_wire(case["q"]))
    assert to_spec(from_spec(spec)) == spec


def test_query_id_is_the_canonical_json_or_default() -> None:
    for case in CASES["cases"]:
        if "id" in case:
            assert query_id(_wire(case["q"])) == case["id"]
    assert query_id(msgspec.UNSET) == DEFAULT_QUERY_ID
    assert query_id(WireQuery()) == DEFAULT_QUERY_ID
    assert to_spec(WireQuery()) is None


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["why"])
def test_malformed_query_objects_are_rejected(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidQuery):
        to_spec(_wire(case["q"]))


@pytest.mark.parametrize("query", [
    {"l": 99999999999999999999, "vf": "l"},
    {"l": 2**53 + 1, "vf": "r"},
    {"sp": 10**400, "i": ".value"},
    {"ep": -(10**400), "i": ".value"},
    {"sp": "a\ud800", "i": ".value"},
    {"sp": 1, "sn": "\udc00", "i": ".value"},
])
def test_a_limit_or_bound_no_client_could_hold_is_an_invalid_query(query: dict[str, Any]) -> None:
    with pytest.raises(InvalidQuery):
        to_spec(_wire(query))
