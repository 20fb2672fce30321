import json
from pathlib import Path

import pytest

from rtdb.core.errors import RtdbError
from rtdb.core.value import array_indices, as_array, normalize, replace_at, same, shallow, to_plain

CASES = json.loads((Path(__file__).parents[2] / "cases/core/validation.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_normalize(case: dict) -> None:
    at = tuple(case.get("at", ()))
    if "error" in case:
        with pytest.raises(RtdbError) as info:
            normalize(case["value"], at)
        assert info.value.code == case["error"]
        assert case["message"] in info.value.message
    elif case.get("ok"):
        assert normalize(case["value"], at) is not None
    else:
        assert normalize(case["value"], at) == case["node"]


def test_non_finite_numbers_are_refused() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(RtdbError, match="finite"):
            normalize({"x": bad})


def test_oversize_string_is_refused() -> None:
    with pytest.raises(RtdbError) as info:
        normalize("x" * (10 * 1024 * 1024 + 1))
    assert info.value.code == "too_big"


def test_plain_rendering_makes_arrays_like_firebase() -> None:
    assert to_plain({"0": "a", "1": "b", "3": "d"}) == ["a", "b", None, "d"]
    assert to_plain({"0": "a", "5": "b"}) == {"0": "a", "5": "b"}
    assert to_plain({"a": {".value": 1, ".priority": 2}, ".priority": 3}) == {"a": 1}


def test_shallow_maps_children_to_true() -> None:
    assert shallow({"a": {"b": 1}, "c": 2}) == {"a": True, "c": True}
    assert shallow("leaf") == "leaf"


def test_same_tells_booleans_from_numbers() -> None:
    assert not same(True, 1)
    assert same(1, 1.0)
    assert same({"a": {"b": 1}}, {"a": {"b": 1}})
    assert not same({"a": {"b": 1}}, {"a": {"b": 2}})


def test_replace_at_prunes_keeps_priorities_and_ignores_deletes_below_leaves() -> None:
    assert replace_at({"a": {"b": 1}}, ("a", "b"), None) is None
    assert replace_at({"a": {"b": 1}, ".priority": 1}, ("a", "c"), 2) == {"a": {"b": 1, "c": 2}, ".priority": 1}
    assert replace_at(5, ("a",), 1) == {"a": 1}
    assert replace_at({".value": 5, ".priority": 3}, ("a",), 1) == {"a": 1, ".priority": 3}
    assert replace_at("leaf", ("a", "b"), None) == "leaf"


@pytest.mark.parametrize("value", [
    10**400,
    {"a": -(10**400)},
    {"a": {".value": 1, ".priority": 10**400}},
    {"a": {"b": 1, ".priority": -(10**400)}},
    {"a": {".sv": {"increment": 10**400}}},
    {".value": 10**400},
])
def test_integers_beyond_a_double_are_refused_as_invalid_data(value: object) -> None:
    with pytest.raises(RtdbError, match="finite") as info:
        normalize(value)
    assert info.value.code == "invalid_data"


def test_integers_beyond_2_to_the_53_become_doubles_even_in_increments() -> None:
    assert normalize(2**60) == 2.0**60 and isinstance(normalize(2**60), float)
    node = normalize({"n": {".sv": {"increment": 2**60}}})
    assert isinstance(node["n"][".sv"]["increment"], float)


@pytest.mark.parametrize("value", ["\ud800", {"a": "x\udfff"}, {"a": {".value": 1, ".priority": "\udc00"}}])
def test_strings_with_a_lone_surrogate_are_refused(value: object) -> None:
    with pytest.raises(RtdbError, match="lone surrogate") as info:
        normalize(value)
    assert info.value.code == "invalid_data"


def test_a_chain_of_value_wrappers_thousands_deep_is_refused_without_recursing() -> None:
    value: object = 1
    for _ in range(5000):
        value = {".value": value}
    with pytest.raises(RtdbError, match="primitive"):
        normalize(value)


def test_array_indices_is_the_heuristic_as_array_uses() -> None:
    assert array_indices(["0", "2", "1"]) == [0, 2, 1]
    assert array_indices(["0", "4"]) is None  # 0..4 with two present: too sparse
    assert array_indices(["0", "2"]) == [0, 2]
    assert array_indices([]) is None
    assert array_indices(["0", "-1"]) is None
    assert array_indices(["0", "a"]) is None
    assert as_array({"1": "b", "0": "a", "3": "d"}) == ["a", "b", None, "d"]
