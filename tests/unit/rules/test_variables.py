"""The query variables a read rule sees."""

from __future__ import annotations

from rtdb.core.query import parse_rest
from rtdb.rules.variables import query_variables


def test_a_plain_read_orders_by_key() -> None:
    q = query_variables(None)
    assert (q["orderByKey"], q["orderByValue"], q["orderByPriority"]) == (True, False, False)
    assert all(q[k] is None for k in ("orderByChild", "startAt", "endAt", "equalTo", "limitToFirst", "limitToLast"))


def test_a_child_query_with_a_range_and_a_limit() -> None:
    q = query_variables(parse_rest({"orderBy": '"a/b"', "startAt": "1", "endAt": '"z"', "limitToLast": "3"}))
    assert q["orderByChild"] == "a/b" and q["orderByKey"] is False
    assert (q["startAt"], q["endAt"], q["equalTo"]) == (1, "z", None)
    assert (q["limitToFirst"], q["limitToLast"]) == (None, 3)


def test_equal_to_is_reported_as_equal_to() -> None:
    q = query_variables(parse_rest({"orderBy": '"$value"', "equalTo": "true", "limitToFirst": "2"}))
    assert q["orderByValue"] is True
    assert (q["startAt"], q["endAt"], q["equalTo"], q["limitToFirst"]) == (None, None, True, 2)


def test_priority_order() -> None:
    q = query_variables(parse_rest({"orderBy": '"$priority"', "startAt": '"a"'}))
    assert q["orderByPriority"] is True and q["orderByKey"] is False and q["startAt"] == "a"
