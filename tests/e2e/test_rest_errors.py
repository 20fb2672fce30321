"""The REST surface of a real `rtdb serve --emulator`, over HTTP: every error
(status and Firebase's ``{"error": …}`` body) and the success paths around them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import error_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(inproc_server: Any) -> Any:
    """The app in this test process (conftest's ``InProcessServer``: the production app and
    protocols, no interpreter start-up per test); tests that need a process of their own
    (its log, its flags) start one with ``server_factory``."""
    return inproc_server

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
INVALID_TOKEN = "Invalid path: Invalid token in path"
NO_DATA = "Error: No data supplied."
UNPARSABLE = "Invalid data; couldn't parse JSON object, array, or value."
NOT_AN_OBJECT = "Invalid data; couldn't parse JSON object. Are you sending a JSON object with valid key names?"
BAD_KEY = "Key value can't be empty or contain $ # [ ] / or ."
NO_ORDER_BY = "orderBy must be defined when other query parameters are defined"
BOTH_LIMITS = "Only one of limitToFirst and limitToLast may be specified"


def put(http: httpx.Client, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return http.put(f"{path}.json", content=json.dumps(body), **kwargs)


def get(http: httpx.Client, path: str, **params: str) -> Any:
    response = http.get(f"{path}.json", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# -- paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["/a$b", "/a%24b", "/a%23b", "/a%5Bb", "/a%5Db", "/a[b", "/a]b", "/a.b", "/a/b.c/d", "/x/%2E"],
)
def test_path_with_a_forbidden_character_is_rejected_for_reads_and_writes(http: httpx.Client, raw: str) -> None:
    assert error_of(http.get(raw + ".json"), 400) == INVALID_TOKEN
    assert error_of(http.put(raw + ".json", content=b"1"), 400) == INVALID_TOKEN
    assert get(http, "") is None


@pytest.mark.parametrize("raw", ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%00b", "/a%0Ab"])
def test_encoded_slash_backslash_or_control_character_in_path_is_rejected(http: httpx.Client, raw: str) -> None:
    assert error_of(http.get(raw + ".json"), 400) == INVALID_TOKEN
    assert error_of(http.put(raw + ".json", content=b"1"), 400) == INVALID_TOKEN


def test_path_of_32_segments_is_accepted_and_33_rejected(http: httpx.Client) -> None:
    deepest = "/" + "/".join(f"k{i}" for i in range(32))
    assert put(http, deepest, 1).status_code == 200
    assert get(http, deepest) == 1
    too_deep = deepest + "/k32"
    assert "maximum depth" in error_of(put(http, too_deep, 1), 400)
    assert "maximum depth" in error_of(http.get(too_deep + ".json"), 400)


def test_body_nesting_beyond_depth_32_is_rejected(http: httpx.Client) -> None:
    def nested(levels: int) -> Any:
        value: Any = True
        for i in range(levels):
            value = {f"n{i}": value}
        return value

    assert put(http, "/deep", nested(31)).status_code == 200  # 1 + 31 = 32 segments
    assert "maximum depth" in error_of(put(http, "/deep", nested(32)), 400)
    assert get(http, "/deep") == nested(31)


def test_percent_encoded_path_segments_are_decoded(http: httpx.Client) -> None:
    assert http.put("/caf%C3%A9/a%20b.json", content=b"1").status_code == 200
    assert get(http, "") == {"café": {"a b": 1}}


def test_trailing_slash_and_empty_segments_are_ignored(http: httpx.Client) -> None:
    assert http.put("/users/jack/name/.json", content=b'"Jack"').status_code == 200
    assert get(http, "/users/jack/name") == "Jack"
    assert http.get("/users//jack///name//.json").json() == "Jack"


def test_request_path_not_ending_in_json_is_not_found(http: httpx.Client) -> None:
    error_of(http.get("/a"), 404)
    error_of(http.put("/a", content=b"1"), 404)
    assert get(http, "/a") is None


# -- bodies ----------------------------------------------------------------------


def test_key_of_768_bytes_is_accepted_and_769_rejected(http: httpx.Client) -> None:
    assert put(http, "", {"k" * 768: 1}).status_code == 200
    message = error_of(put(http, "", {"k" * 769: 1}), 400)
    assert "768" in message
    assert get(http, "", shallow="true") == {"k" * 768: True}


def test_key_length_is_measured_in_utf8_bytes(http: httpx.Client) -> None:
    assert put(http, "", {"é" * 384: 1}).status_code == 200  # 384 characters, 768 bytes
    assert "768" in error_of(put(http, "", {"é" * 385: 1}), 400)  # 770 bytes
    # the limit applies to the whole path: "a" + "/" + 768 bytes
    assert "768" in error_of(put(http, "/a", {"é" * 384: 1}), 400)
    assert get(http, "", shallow="true") == {"é" * 384: True}


def test_string_over_10_mib_is_rejected(http: httpx.Client) -> None:
    limit = 10 * 1024 * 1024
    assert "10485760" in error_of(put(http, "/s", "x" * (limit + 1)), 400)
    assert "10485760" in error_of(put(http, "/s", {"a": "é" * (limit // 2 + 1)}), 400)  # bytes, not characters
    assert get(http, "/s") is None
    assert put(http, "/s", "x" * limit, params={"print": "silent"}).status_code == 204
    assert len(get(http, "/s")) == limit


@pytest.mark.parametrize("key", ["a.b", "a$", "a#", "a[", "a]", "a/b", "", "a\u0001", "a\u007f"])
def test_forbidden_key_in_body_is_rejected(http: httpx.Client, key: str) -> None:
    assert BAD_KEY in error_of(put(http, "/x", {"ok": 1, key: 2}), 400)
    assert get(http, "/x") is None


@pytest.mark.parametrize("body", [b"{bad", b"{'a': 1}", b"[1,", b"tru", b'"unterminated', b"\xff\xfe"])
def test_unparsable_json_body_is_rejected(http: httpx.Client, body: bytes) -> None:
    for method in ("PUT", "POST", "PATCH"):
        assert error_of(http.request(method, "/x.json", content=body), 400) == UNPARSABLE
    assert get(http, "/x") is None


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body_on_put_or_post_is_rejected(http: httpx.Client, method: str, body: bytes) -> None:
    assert error_of(http.request(method, "/x.json", content=body), 400) == NO_DATA


@pytest.mark.parametrize("body", [[1, 2], "text", 5, True])
def test_patch_with_a_non_object_body_is_rejected(http: httpx.Client, body: Any) -> None:
    assert error_of(http.patch("/x.json", content=json.dumps(body)), 400) == NOT_AN_OBJECT


@pytest.mark.parametrize(
    "updates",
    [{"a": 1, "a/b": 2}, {"a/b/c": 1, "a/b": 2}, {"a": {"b": 1}, "a/b/c": 2}, {"x/y": 1, "x/y/z": 2, "q": 3}],
)
def test_patch_with_overlapping_paths_is_rejected_and_writes_nothing(
    http: httpx.Client, updates: dict[str, Any]
) -> None:
    assert put(http, "/base", {"keep": 1}).status_code == 200
    assert "ancestor" in error_of(http.patch("/base.json", content=json.dumps(updates)), 400)
    assert get(http, "/base") == {"keep": 1}


def test_patch_with_sibling_paths_sharing_a_prefix_is_accepted(http: httpx.Client) -> None:
    response = http.patch("/base.json", content=json.dumps({"a/b": 1, "a/bc": 2, "ab": 3}))
    assert response.status_code == 200
    assert get(http, "/base") == {"a": {"b": 1, "bc": 2}, "ab": 3}


@pytest.mark.parametrize(
    "body", [b"NaN", b"Infinity", b"-Infinity", b'{"x": NaN}', b'{"x": [1, Infinity]}', b"1e999", b'{"x": -1e999}']
)
def test_non_finite_numbers_are_rejected(http: httpx.Client, body: bytes) -> None:
    error_of(http.put("/n.json", content=body), 400)
    error_of(http.patch("/n.json", content=b'{"v": ' + body + b"}"), 400)
    assert get(http, "/n") is None


@pytest.mark.parametrize(
    "placeholder",
    [{".sv": "now"}, {".sv": {"decrement": 1}}, {".sv": {"increment": "1"}}, {".sv": {"increment": True}},
     {".sv": {"increment": 1, "extra": 2}}, {".sv": ["timestamp"]}, {".sv": "timestamp", "other": 1}],
)
def test_unknown_or_malformed_server_value_is_rejected(http: httpx.Client, placeholder: dict[str, Any]) -> None:
    message = error_of(put(http, "/sv", {"a": placeholder}), 400)
    assert ".sv" in message or "server value" in message
    error_of(http.patch("/sv.json", content=json.dumps({"a": placeholder})), 400)
    assert get(http, "/sv") is None


@pytest.mark.parametrize("body", [{".value": 1, "a": 2}, {"x": {".value": "s", "child": 1}}])
def test_value_wrapper_mixed_with_children_is_rejected(http: httpx.Client, body: dict[str, Any]) -> None:
    assert ".value" in error_of(put(http, "/v", body), 400)
    assert get(http, "/v") is None


@pytest.mark.parametrize(
    "body", [{".value": 1, ".priority": True}, {"a": 1, ".priority": False}, {"a": {"b": 1, ".priority": [1]}},
             {"a": {"b": 1, ".priority": {"x": 1}}}],
)
def test_priority_that_is_not_string_number_or_null_is_rejected(http: httpx.Client, body: Any) -> None:
    assert "priority" in error_of(put(http, "/p", body), 400)
    assert get(http, "/p") is None


def test_boolean_written_to_the_priority_pseudo_child_is_rejected(http: httpx.Client) -> None:
    assert put(http, "/p", "v").status_code == 200
    assert "priority" in error_of(http.put("/p/.priority.json", content=b"true"), 400)
    assert get(http, "/p", format="export") == "v"


# -- query parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"limitToFirst": "1"}, NO_ORDER_BY),
        ({"startAt": "1"}, NO_ORDER_BY),
        ({"endAt": '"a"'}, NO_ORDER_BY),
        ({"equalTo": "1"}, NO_ORDER_BY),
        ({"limitToLast": "1"}, NO_ORDER_BY),
        ({"orderBy": '"h"', "limitToFirst": "1", "limitToLast": "1"}, BOTH_LIMITS),
    ],
)
def test_query_parameter_combination_errors_have_firebases_messages(
    http: httpx.Client, params: dict[str, str], expected: str
) -> None:
    assert error_of(http.get("/q.json", params=params), 400) == expected


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"orderBy": "height"}, "orderBy"),
        ({"orderBy": '"height'}, "orderBy"),
        ({"orderBy": "1"}, "orderBy"),
        ({"orderBy": '""'}, "orderBy"),
        ({"orderBy": '"a.b"'}, "orderBy"),
        ({"orderBy": '"h"', "limitToFirst": "-1"}, "limitToFirst"),
        ({"orderBy": '"h"', "limitToLast": "-5"}, "limitToLast"),
        ({"orderBy": '"h"', "limitToFirst": "x"}, "limitToFirst"),
        ({"orderBy": '"h"', "limitToFirst": "1.5"}, "limitToFirst"),
        ({"orderBy": '"$key"', "startAt": "1"}, "startAt"),
        ({"orderBy": '"$key"', "endAt": "true"}, "endAt"),
        ({"orderBy": '"$key"', "equalTo": "2"}, "equalTo"),
        ({"orderBy": '"h"', "startAt": "not json"}, "startAt"),
        ({"orderBy": '"h"', "startAt": "{}"}, "startAt"),
        ({"orderBy": '"h"', "endAt": "[1]"}, "endAt"),
        ({"orderBy": '"h"', "equalTo": "1", "startAt": "0"}, "equalTo"),
    ],
)
def test_malformed_query_parameter_is_rejected(http: httpx.Client, params: dict[str, str], fragment: str) -> None:
    assert fragment in error_of(http.get("/q.json", params=params), 400)


@pytest.mark.parametrize(
    "params", [{"orderBy": '"$key"'}, {"orderBy": '"h"', "limitToFirst": "1"}, {"orderBy": '"$value"', "equalTo": "1"}]
)
def test_shallow_combined_with_a_query_is_rejected(http: httpx.Client, params: dict[str, str]) -> None:
    assert "shallow" in error_of(http.get("/q.json", params={"shallow": "true", **params}), 400)


def test_shallow_with_a_value_other_than_true_or_false_is_rejected(http: httpx.Client) -> None:
    assert "shallow" in error_of(http.get("/q.json", params={"shallow": "yes"}), 400)


@pytest.mark.parametrize("timeout", ["abc", "10", "0s", "0ms", "16min", "901s", "-1s", "1h", "1.5s"])
def test_bad_timeout_is_rejected(http: httpx.Client, timeout: str) -> None:
    assert "timeout" in error_of(http.get("/q.json", params={"timeout": timeout}), 400)


@pytest.mark.parametrize(
    "params", [{}, {"shallow": "true"}, {"orderBy": '"$value"', "limitToFirst": "3"}, {"format": "export"}]
)
def test_a_read_that_overruns_its_timeout_is_400_never_500(http: httpx.Client, params: dict[str, str]) -> None:
    put(http, "/wide", {f"k{i}": i for i in range(5000)})
    response = http.get("/wide.json", params={"timeout": "1ms", **params})
    if response.status_code != 200:  # a fast machine may finish within 1 ms
        assert "timeout" in error_of(response, 400)


@pytest.mark.parametrize("timeout", ["2000ms", "3s", "15min", "900s"])
def test_valid_timeout_is_accepted(http: httpx.Client, timeout: str) -> None:
    assert http.get("/q.json", params={"timeout": timeout}).status_code == 200


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_bad_write_size_limit_is_rejected(http: httpx.Client, method: str) -> None:
    content = None if method == "DELETE" else b'{"a": 1}'
    response = http.request(method, "/w.json", params={"writeSizeLimit": "huge"}, content=content)
    assert "writeSizeLimit" in error_of(response, 400)
    assert get(http, "/w") is None


@pytest.mark.parametrize("limit", ["tiny", "small", "medium", "large", "unlimited"])
def test_every_documented_write_size_limit_is_accepted(http: httpx.Client, limit: str) -> None:
    assert http.put("/w.json", params={"writeSizeLimit": limit}, content=b"1").status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_bad_print_is_rejected(http: httpx.Client, method: str) -> None:
    content = b"1" if method == "PUT" else None
    response = http.request(method, "/pr.json", params={"print": "ugly"}, content=content)
    assert "print" in error_of(response, 400)
    assert get(http, "/pr") is None


@pytest.mark.parametrize("override", ["{bad", "5", '"user"', "[1]"])
def test_malformed_auth_variable_override_is_rejected(http: httpx.Client, override: str) -> None:
    response = http.get("/x.json", params={"auth_variable_override": override},
                        headers={"Authorization": "Bearer owner"})
    assert "auth_variable_override" in error_of(response, 400)


def test_unsupported_method_override_is_rejected(http: httpx.Client) -> None:
    error_of(http.post("/o.json", headers={"X-HTTP-Method-Override": "TRACE"}, content=b"1"), 400)
    assert get(http, "/o") is None


# -- conditional requests --------------------------------------------------------


def etag_of(http: httpx.Client, path: str) -> str:
    response = http.get(f"{path}.json", headers={"X-Firebase-ETag": "true"})
    assert response.status_code == 200
    return response.headers["ETag"]


def test_etag_is_sent_only_when_requested_and_is_null_etag_for_absent_data(http: httpx.Client) -> None:
    assert "ETag" not in http.get("/e.json").headers
    assert etag_of(http, "/e") == "null_etag"
    put(http, "/e", {"a": 1})
    tag = etag_of(http, "/e")
    assert tag != "null_etag"
    put(http, "/e", {"a": 1})
    assert etag_of(http, "/e") == tag
    put(http, "/e", {"a": 2})
    assert etag_of(http, "/e") != tag


def test_put_with_mismatched_if_match_is_412_with_current_value_and_etag(http: httpx.Client) -> None:
    put(http, "/e", {"a": [1, 2]})
    current = etag_of(http, "/e")
    response = put(http, "/e", 5, headers={"if-match": "stale"})
    assert response.status_code == 412
    assert response.json() == {"a": [1, 2]}
    assert response.headers["ETag"] == current
    assert get(http, "/e") == {"a": [1, 2]}


def test_put_with_matching_if_match_writes_and_returns_the_new_etag(http: httpx.Client) -> None:
    put(http, "/e", 1)
    response = put(http, "/e", 2, headers={"if-match": etag_of(http, "/e")})
    assert response.status_code == 200
    assert response.json() == 2
    assert response.headers["ETag"] == etag_of(http, "/e")


def test_if_match_null_etag_creates_only_when_absent(http: httpx.Client) -> None:
    assert put(http, "/new", "first", headers={"if-match": "null_etag"}).status_code == 200
    second = put(http, "/new", "second", headers={"if-match": "null_etag"})
    assert second.status_code == 412
    assert second.json() == "first"
    assert get(http, "/new") == "first"


def test_delete_with_mismatched_if_match_is_412_with_current_value_and_etag(http: httpx.Client) -> None:
    put(http, "/e", {"a": 1})
    current = etag_of(http, "/e")
    response = http.delete("/e.json", headers={"if-match": "stale"})
    assert response.status_code == 412
    assert get(http, "/e") == {"a": 1}
    assert response.headers.get("ETag") == current
    assert response.json() == {"a": 1}


def test_get_with_matching_if_none_match_is_304_with_empty_body(http: httpx.Client) -> None:
    put(http, "/e", {"a": 1})
    tag = etag_of(http, "/e")
    response = http.get("/e.json", headers={"if-none-match": tag})
    assert response.status_code == 304
    assert response.content == b""
    put(http, "/e", {"a": 2})
    assert http.get("/missing.json", headers={"if-none-match": "null_etag"}).status_code == 304


def test_get_with_stale_if_none_match_is_200_with_the_value_and_its_etag(http: httpx.Client) -> None:
    put(http, "/e", {"a": 1})
    stale = etag_of(http, "/e")
    put(http, "/e", {"a": 2})
    changed = http.get("/e.json", headers={"if-none-match": stale})
    assert changed.status_code == 200
    assert changed.json() == {"a": 2}
    assert changed.headers.get("ETag") == etag_of(http, "/e")


# -- request size ----------------------------------------------------------------


def test_body_over_max_body_bytes_is_rejected_whether_declared_or_chunked(server_factory: Callable[..., Any]) -> None:
    small = server_factory("--emulator", "--max-body-bytes", "1000")
    fits = json.dumps("x" * 990).encode()
    too_big = json.dumps("x" * 2000).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(too_big), 100):
            yield too_big[i : i + 100]

    with httpx.Client(base_url=small.url, timeout=30) as http:
        assert http.put("/ok.json", content=fits).status_code == 200
        error_of(http.put("/big.json", content=too_big), 400)
        error_of(http.put("/big.json", content=chunks()), 400)
        error_of(http.post("/big.json", content=too_big), 400)
        error_of(http.patch("/big.json", content=b'{"a": ' + too_big + b"}"), 400)
        assert get(http, "/big") is None
        assert get(http, "/ok") == "x" * 990


# -- success paths ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_print_silent_answers_204_with_an_empty_body_and_still_writes(http: httpx.Client, method: str) -> None:
    put(http, "/s", {"old": 1})
    content = None if method == "DELETE" else b'{"new": 2}'
    response = http.request(method, "/s.json", params={"print": "silent"}, content=content)
    assert response.status_code == 204
    assert response.content == b""
    expected = {
        "PUT": {"new": 2},
        "PATCH": {"old": 1, "new": 2},
        "DELETE": None,
    }
    stored = get(http, "/s")
    if method == "POST":
        assert stored["old"] == 1 and [v for k, v in stored.items() if k != "old"] == [{"new": 2}]
    else:
        assert stored == expected[method]


def test_print_pretty_indents_the_json(http: httpx.Client) -> None:
    put(http, "/pp", {"a": {"b": 1}})
    response = http.get("/pp.json", params={"print": "pretty"})
    assert response.status_code == 200
    assert "\n" in response.text and re.search(r"^\s+\"a\"", response.text, re.M)
    assert response.json() == {"a": {"b": 1}}


def test_write_responses_echo_the_data(http: httpx.Client) -> None:
    assert put(http, "/w", {"a": [1, 2]}).json() == {"a": [1, 2]}
    assert http.patch("/w.json", content=b'{"b": "x"}').json() == {"b": "x"}
    assert http.delete("/w.json").json() is None
    assert http.post("/w.json", content=b"1").json().keys() == {"name"}


def test_reading_a_missing_location_is_200_null(http: httpx.Client) -> None:
    response = http.get("/nowhere/at/all.json")
    assert response.status_code == 200
    assert response.json() is None


def test_format_export_shows_priorities_and_plain_get_hides_them(http: httpx.Client) -> None:
    body = {"leaf": {".value": "v", ".priority": 1}, "obj": {"c": True, ".priority": "p"}, "bare": 2.5}
    assert put(http, "/x", body).status_code == 200
    assert get(http, "/x") == {"leaf": "v", "obj": {"c": True}, "bare": 2.5}
    assert get(http, "/x", format="export") == body
    assert get(http, "/x/leaf", format="export") == {".value": "v", ".priority": 1}


def test_priority_pseudo_child_reads_and_writes_the_priority(http: httpx.Client) -> None:
    put(http, "/items", {"a": "A", "b": {"x": 1}, "c": "C"})
    assert http.put("/items/a/.priority.json", content=b"3").status_code == 200
    assert http.put("/items/b/.priority.json", content=b"1.0").status_code == 200
    assert http.put("/items/c/.priority.json", content=b'"s"').status_code == 200
    assert get(http, "/items/a/.priority") == 3
    assert get(http, "/items/b/.priority") == 1
    assert get(http, "/items/c/.priority") == "s"
    assert get(http, "/items/missing/.priority") is None
    assert get(http, "/items", format="export") == {
        "a": {".value": "A", ".priority": 3}, "b": {"x": 1, ".priority": 1}, "c": {".value": "C", ".priority": "s"},
    }
    assert get(http, "/items") == {"a": "A", "b": {"x": 1}, "c": "C"}
    ranked = get(http, "/items", orderBy='"$priority"', startAt="2")
    assert ranked == {"a": "A", "c": "C"}
    assert http.put("/items/a/.priority.json", content=b"null").status_code == 200
    assert get(http, "/items/a", format="export") == "A"


def test_zero_is_a_priority_like_any_other_number(http: httpx.Client) -> None:
    put(http, "/z", {"a": "A", "b": "B"})
    assert http.put("/z/a/.priority.json", content=b"0").status_code == 200
    assert http.patch("/z.json", content=b'{"b/.priority": 0}').status_code == 200
    assert get(http, "/z", format="export") == {
        "a": {".value": "A", ".priority": 0}, "b": {".value": "B", ".priority": 0},
    }


def test_put_replaces_the_priority_and_patch_keeps_it(http: httpx.Client) -> None:
    put(http, "/n", {"a": 1, ".priority": 7})
    http.patch("/n.json", content=b'{"b": 2}')
    assert get(http, "/n", format="export") == {"a": 1, "b": 2, ".priority": 7}
    put(http, "/n", {"a": 1})
    assert get(http, "/n", format="export") == {"a": 1}


def test_query_bounds_with_a_key_break_ties_and_priority_order_ranks_null_number_string(
    http: httpx.Client,
) -> None:
    put(http, "/d", {"lin": {"h": 0.6}, "ptero": {"h": 0.6}, "steg": {"h": 4}, "none": {"x": 1}})
    assert get(http, "/d", orderBy='"h"', startAt='0.6,"ptero"') == {"ptero": {"h": 0.6}, "steg": {"h": 4}}
    assert get(http, "/d", orderBy='"h"', endAt='0.6,"lin"') == {"none": {"x": 1}, "lin": {"h": 0.6}}
    assert get(http, "/d", orderBy='"h"', equalTo='0.6,"lin"') == {"lin": {"h": 0.6}}
    assert get(http, "/d", orderBy='"h"', startAt="0.6", limitToFirst="1") == {"lin": {"h": 0.6}}
    put(http, "/p", {"s": {".value": 1, ".priority": "a"}, "n": {".value": 2, ".priority": 5}, "z": 3})
    assert get(http, "/p", orderBy='"$priority"', limitToFirst="1") == {"z": 3}
    assert get(http, "/p", orderBy='"$priority"', limitToFirst="2") == {"z": 3, "n": 2}
    assert get(http, "/p", orderBy='"$priority"', limitToLast="1") == {"s": 1}
    assert get(http, "/p", orderBy='"$priority"', startAt='"a"') == {"s": 1}


def test_shallow_maps_children_to_true_and_returns_primitives_as_is(http: httpx.Client) -> None:
    put(http, "/sh", {"obj": {"deep": {"er": 1}}, "num": 5, "str": "s"})
    assert get(http, "/sh", shallow="true") == {"obj": True, "num": True, "str": True}
    assert get(http, "/sh/num", shallow="true") == 5
    assert get(http, "/sh/missing", shallow="true") is None
    assert get(http, "/sh", shallow="false") == {"obj": {"deep": {"er": 1}}, "num": 5, "str": "s"}


def test_download_sets_an_attachment_content_disposition(http: httpx.Client) -> None:
    put(http, "/dl", {"a": 1})
    response = http.get("/dl.json", params={"download": "backup.json"})
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "backup.json" in disposition
    assert response.json() == {"a": 1}


def test_callback_wraps_the_json_for_jsonp(http: httpx.Client) -> None:
    put(http, "/cb", {"a": [1, "two"]})
    response = http.get("/cb.json", params={"callback": "handle_it"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    match = re.fullmatch(r"handle_it\((.*)\);?", response.text, re.S)
    assert match is not None, response.text
    assert json.loads(match.group(1)) == {"a": [1, "two"]}
    error_of(http.get("/cb.json", params={"callback": "alert(1)//"}), 400)


@pytest.mark.parametrize("how", ["header", "query"])
def test_post_with_method_override_acts_as_the_named_method(http: httpx.Client, how: str) -> None:
    def post(method: str, body: bytes | None) -> httpx.Response:
        if how == "header":
            return http.post("/o.json", headers={"X-HTTP-Method-Override": method}, content=body)
        return http.post("/o.json", params={"x-http-method-override": method}, content=body)

    assert post("PUT", b'{"a": 1}').status_code == 200
    assert get(http, "/o") == {"a": 1}
    assert post("PATCH", b'{"b": 2}').status_code == 200
    assert get(http, "/o") == {"a": 1, "b": 2}
    assert post("DELETE", None).status_code == 200
    assert get(http, "/o") is None


def test_push_ids_are_20_characters_and_sort_in_creation_order(http: httpx.Client) -> None:
    names = []
    for i in range(60):
        response = http.post("/list.json", content=json.dumps(i))
        assert response.status_code == 200
        names.append(response.json()["name"])
    assert all(len(n) == 20 and set(n) <= set(PUSH_CHARS) for n in names)
    assert len(set(names)) == 60
    assert sorted(names) == names
    stored = get(http, "/list")
    assert [stored[n] for n in sorted(stored)] == list(range(60))
    assert get(http, "/list", orderBy='"$key"', limitToLast="1") == {names[-1]: 59}


def test_push_ids_from_concurrent_clients_are_unique(server: Any) -> None:
    def push_many(worker: int) -> list[str]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return [client.post("/c.json", content=json.dumps([worker, i])).json()["name"] for i in range(25)]

    with ThreadPoolExecutor(8) as pool:
        per_worker = list(pool.map(push_many, range(8)))
    for names in per_worker:
        assert sorted(names) == names
    everything = [n for names in per_worker for n in names]
    assert len(set(everything)) == 200
    with httpx.Client(base_url=server.url) as http:
        assert len(get(http, "/c", shallow="true")) == 200


def test_one_timestamp_per_request_for_every_placeholder(http: httpx.Client) -> None:
    ts = {".sv": "timestamp"}
    before = int(time.time() * 1000)
    response = http.patch("/t.json", content=json.dumps({"a": ts, "b/c": ts, "d": {"e": ts, "f": [ts, ts]}}))
    after = int(time.time() * 1000)
    assert response.status_code == 200
    stored = get(http, "/t")
    stamps = [stored["a"], stored["b"]["c"], stored["d"]["e"], *stored["d"]["f"]]
    assert len(set(stamps)) == 1
    assert isinstance(stamps[0], int) and before - 1000 <= stamps[0] <= after + 1000
    put(http, "/t2", {"x": ts, "y": {"z": ts}, ".priority": ts})
    exported = get(http, "/t2", format="export")
    assert exported["x"] == exported["y"]["z"] == exported[".priority"] >= stamps[0]


def test_concurrent_increments_from_many_clients_sum_exactly(server: Any) -> None:
    workers, each = 12, 25
    inc = json.dumps({".sv": {"increment": 1}})

    def hammer(worker: int) -> int:
        ok = 0
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(each):
                if worker % 2:
                    response = client.put("/counter/n.json", content=inc)
                else:
                    response = client.patch("/counter.json", content=json.dumps({"n": {".sv": {"increment": 1}}}))
                ok += response.status_code == 200
        return ok

    with ThreadPoolExecutor(workers) as pool:
        acknowledged = sum(pool.map(hammer, range(workers)))
    assert acknowledged == workers * each
    with httpx.Client(base_url=server.url) as http:
        assert get(http, "/counter/n") == workers * each


def test_increment_of_a_missing_or_non_numeric_value_starts_from_zero(http: httpx.Client) -> None:
    put(http, "/i", {"s": "text", "f": 1.5})
    inc = {".sv": {"increment": 2}}
    http.patch("/i.json", content=json.dumps({"s": inc, "f": inc, "missing": inc}))
    assert get(http, "/i") == {"s": 2, "f": 3.5, "missing": 2}
    put(http, "/i/f", {".sv": {"increment": -0.5}})
    assert get(http, "/i/f") == 3


def test_arrays_round_trip_and_are_stored_as_integer_keyed_objects(http: httpx.Client) -> None:
    value = ["a", 2, {"c": [True, False]}, [1.5]]
    assert put(http, "/arr", value).json() == value
    assert get(http, "/arr") == value
    assert get(http, "/arr/2/c/1") is False
    http.delete("/arr/1.json")
    assert get(http, "/arr") == ["a", None, {"c": [True, False]}, [1.5]]


@pytest.mark.parametrize(
    ("stored", "rendered"),
    [
        ({"0": "a", "1": "b", "3": "d"}, ["a", "b", None, "d"]),
        ({"0": "a", "5": "b"}, {"0": "a", "5": "b"}),
        ({"1": "a", "2": "b"}, [None, "a", "b"]),
        ({"2": "x"}, {"2": "x"}),
        ({"0": "a", "1": "b", "x": "c"}, {"0": "a", "1": "b", "x": "c"}),
        ({"-1": "a", "0": "b"}, {"-1": "a", "0": "b"}),
    ],
)
def test_array_heuristic_needs_integer_keys_covering_more_than_half(
    http: httpx.Client, stored: dict[str, Any], rendered: Any
) -> None:
    put(http, "/h", stored)
    assert get(http, "/h") == rendered


def test_integral_floats_are_returned_as_integers(http: httpx.Client) -> None:
    response = http.put("/f.json", content=b'{"a": 1.0, "b": 2.5, "c": -3.0, "d": 1e3, "e": 0.0}')
    assert response.status_code == 200
    raw = http.get("/f.json").text
    assert json.loads(raw) == {"a": 1, "b": 2.5, "c": -3, "d": 1000, "e": 0}
    assert '"a":1' in raw.replace(" ", "") and "1.0" not in raw and "1000.0" not in raw


def test_namespaces_isolate_data(http: httpx.Client) -> None:
    assert http.put("/shared.json", params={"ns": "alpha"}, content=b'"A"').status_code == 200
    assert http.put("/shared.json", params={"ns": "beta"}, content=b'"B"').status_code == 200
    assert get(http, "/shared", ns="alpha") == "A"
    assert get(http, "/shared", ns="beta") == "B"
    assert get(http, "/shared") is None
    assert http.delete("/shared.json", params={"ns": "alpha"}).status_code == 200
    assert get(http, "/shared", ns="beta") == "B"


def test_namespace_is_taken_from_a_localhost_subdomain_host_header(http: httpx.Client, server: Any) -> None:
    response = http.put("/h.json", content=b'"via host"', headers={"Host": f"shop.localhost:{server.port}"})
    assert response.status_code == 200
    assert get(http, "/h", ns="shop") == "via host"
    assert get(http, "/h") is None


def test_invalid_namespace_is_rejected(http: httpx.Client) -> None:
    error_of(http.get("/x.json", params={"ns": "../etc"}), 404)


def test_deleting_the_last_child_prunes_empty_parents(http: httpx.Client) -> None:
    put(http, "/keep", 1)
    put(http, "/p/q/r/s", 1)
    assert http.delete("/p/q/r/s.json").status_code == 200
    assert get(http, "/p") is None
    assert get(http, "", shallow="true") == {"keep": True}
    put(http, "/p/q/r", {"s": 1, "t": 2})
    http.patch("/p/q/r.json", content=b'{"s": null, "t": null}')
    assert get(http, "") == {"keep": 1}
    put(http, "/p/q", {"r": 1})
    put(http, "/p/q/r", {})
    assert get(http, "") == {"keep": 1}


def test_null_and_empty_objects_are_never_stored(http: httpx.Client) -> None:
    put(http, "/z", {"a": None, "b": {}, "c": {"d": None}, "e": [], "f": 1})
    assert get(http, "/z") == {"f": 1}
    assert get(http, "/z", shallow="true") == {"f": True}
