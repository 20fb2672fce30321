"""The window of a paged ``shallow=true`` listing (firebase-tools' listRemote): keys in key order."""

from __future__ import annotations

import pytest

from rtdb.core.errors import InvalidQuery
from rtdb.core.query import parse_shallow

KEYS = ["b", "10", "a", "2", "-1", "c", "a b"]


def listed(params: dict[str, str]) -> list[str]:
    window = parse_shallow(params)
    assert window is not None
    return window.select((k, None) for k in KEYS)


def test_a_plain_shallow_read_has_no_window() -> None:
    assert parse_shallow({"shallow": "true", "print": "pretty", "timeout": "3s"}) is None


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ({"limitToFirst": "3"}, ["-1", "2", "10"]),
        ({"limitToFirst": "3", "startAfter": "10"}, ["a", "a b", "b"]),
        ({"limitToFirst": "3", "startAfter": '"10"'}, ["a", "a b", "b"]),
        ({"startAfter": '"a b"'}, ["b", "c"]),
        ({"startAfter": "a"}, ["a b", "b", "c"]),
        ({"startAfter": "c"}, []),
        ({"limitToFirst": "0"}, []),
    ],
)
def test_keys_come_in_key_order_after_start_after_and_at_most_limit_to_first(
    params: dict[str, str], keys: list[str]
) -> None:
    assert listed(params) == keys


@pytest.mark.parametrize(
    "params",
    [{"orderBy": '"$key"'}, {"limitToLast": "1"}, {"startAt": '"a"'}, {"endAt": '"a"'}, {"equalTo": '"a"'},
     {"endBefore": '"a"'}, {"limitToFirst": "-1"}, {"limitToFirst": "x"}],
)
def test_other_query_parameters_or_bad_limits_are_rejected(params: dict[str, str]) -> None:
    with pytest.raises(InvalidQuery):
        parse_shallow(params)
