"""REST query parameters no client could send meaningfully are InvalidQuery, never a crash
further in (a limit SQLite cannot hold, a bound that cannot be compared or encoded)."""

from __future__ import annotations

import pytest

from rtdb.core.errors import InvalidQuery
from rtdb.core.query import MAX_LIMIT, parse_rest


@pytest.mark.parametrize("name", ["limitToFirst", "limitToLast"])
def test_a_limit_beyond_2_to_the_53_is_refused(name: str) -> None:
    with pytest.raises(InvalidQuery, match="no larger than"):
        parse_rest({"orderBy": '"$key"', name: "99999999999999999999"})
    assert parse_rest({"orderBy": '"$key"', name: str(MAX_LIMIT)}).limit == MAX_LIMIT  # type: ignore[union-attr]


@pytest.mark.parametrize(("name", "order_by", "raw"), [
    ("startAt", '"$key"', '"\\ud800"'),
    ("equalTo", '"$value"', '"\\ud800"'),
    ("endAt", '"$value"', '"a\\udfff"'),
    ("startAt", '"$value"', '1,"\\udc00"'),  # the key of a (value, key) bound
    ("startAt", '"$value"', "NaN"),
    ("endAt", '"$priority"', "-Infinity"),
    ("equalTo", '"$value"', "1" + "0" * 400),
])
def test_a_bound_that_is_nan_beyond_a_double_or_a_lone_surrogate_is_refused(name: str, order_by: str,
                                                                            raw: str) -> None:
    with pytest.raises(InvalidQuery, match=name):
        parse_rest({"orderBy": order_by, name: raw})


@pytest.mark.parametrize("name", ["orderBy", "startAt", "equalTo"])
def test_a_parameter_nested_thousands_deep_is_refused(name: str) -> None:
    params = {"orderBy": '"$value"', name: "[" * 10_000 + "]" * 10_000}
    with pytest.raises(InvalidQuery, match=name):
        parse_rest(params)


def test_a_bound_key_nested_thousands_deep_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="startAt"):
        parse_rest({"orderBy": '"$value"', "startAt": "1," + "[" * 10_000 + "]" * 10_000})


def test_big_integer_bounds_compare_as_the_doubles_clients_hold() -> None:
    spec = parse_rest({"orderBy": '"$value"', "startAt": str(2**60)})
    assert spec is not None and spec.start is not None and spec.start.value == 2.0**60
