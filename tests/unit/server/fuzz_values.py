"""The JSON values the fuzz tests of every transport send: ordinary ones and the awkward
ones (lone surrogates, integers past 2**53 and past a double, Firebase's special keys and
server values, paths too deep or too long), nested a few levels."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfff", "\udc00b", "x\ud83d"])
HUGE_INTEGERS = st.sampled_from([10**400, -(10**400), 2**53 + 1, 2**63, 2**64 + 1, 10**308 * 10,
                                 99999999999999999999])
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    HUGE_INTEGERS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    LONE_SURROGATES,
    st.sampled_from(["timestamp", "increment", ".sv", "[MIN_NAME]", "[MAX_NAME]", ""]),
)
keys = st.one_of(
    st.text(max_size=8),
    LONE_SURROGATES,
    st.sampled_from([".sv", ".value", ".priority", "0", "1", "a", "a/b", "a.b", "$x", "[", "\x7f", "/", "",
                     "a/.priority", "/".join(["k"] * 33), "x" * 769]),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.builds(lambda n: {".sv": {"increment": n}}, children),
        st.builds(lambda v, p: {".value": v, ".priority": p}, children, children),
        st.just({".sv": "timestamp"}),
    )


def json_values(max_leaves: int) -> st.SearchStrategy[Any]:
    return st.recursive(leaves, _extend, max_leaves=max_leaves)
