"""The parts of Firebase's REST contract that clients rely on beyond plain reads and writes,
against a real `rtdb serve`: ETags of writes, caching and CORS headers, HEAD and unknown
methods, `startAfter`/`endBefore`, parameters that only reads take, the index requirement of
production mode, firebase-tools' paged shallow listing and `PATCH null`, `download=` names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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

OWNER = {"Authorization": "Bearer owner"}
ASK_ETAG = {"X-Firebase-ETag": "true"}


def put(http: httpx.Client, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    response = http.put(f"{path}.json", content=json.dumps(body), **kwargs)
    assert response.status_code == 200, response.text
    return response


def etag_of(http: httpx.Client, path: str) -> str:
    response = http.get(f"{path}.json", headers=ASK_ETAG)
    assert response.status_code == 200
    return response.headers["ETag"]


# -- ETags of writes ---------------------------------------------------------------


def test_put_post_and_delete_return_the_etag_of_what_they_wrote_when_asked(http: httpx.Client) -> None:
    written = put(http, "/e", {"a": 1, "b": "x"}, headers=ASK_ETAG)
    assert written.headers["ETag"] == etag_of(http, "/e") != "null_etag"

    pushed = http.post("/list.json", content=b'{"n": 1}', headers=ASK_ETAG)
    assert pushed.status_code == 200
    assert pushed.headers["ETag"] == etag_of(http, "/list/" + pushed.json()["name"]) != "null_etag"

    deleted = http.delete("/e.json", headers=ASK_ETAG)
    assert deleted.status_code == 200
    assert deleted.headers["ETag"] == "null_etag"


def test_writes_carry_no_etag_unless_asked(http: httpx.Client) -> None:
    assert "ETag" not in put(http, "/e", 1).headers
    assert "ETag" not in http.post("/list.json", content=b"1").headers
    assert "ETag" not in http.delete("/e.json").headers


def test_if_match_on_a_get_is_rejected(http: httpx.Client) -> None:
    put(http, "/e", 1)
    error_of(http.get("/e.json", headers={"if-match": etag_of(http, "/e")}), 400)


# -- headers on every response and methods -------------------------------------------


def test_every_response_says_no_cache_and_exposes_the_etag_to_browsers(http: httpx.Client) -> None:
    put(http, "/c", {"a": 1})
    responses = [
        http.get("/c.json"),
        http.get("/c.json", headers={"if-none-match": etag_of(http, "/c")}),  # 304
        http.put("/c.json", content=b"2"),
        http.patch("/c.json", content=b"{}", params={"print": "silent"}),  # 204
        http.get("/c.json", params={"orderBy": "nope"}),  # 400
        http.head("/c.json"),
    ]
    assert [r.status_code for r in responses] == [200, 304, 200, 204, 400, 200]
    for response in responses:
        assert response.headers["Cache-Control"] == "no-cache"
        assert "etag" in response.headers["Access-Control-Expose-Headers"].lower()


def test_head_answers_the_headers_of_the_get_without_a_body(http: httpx.Client) -> None:
    put(http, "/h", {"a": [1, 2], "b": "text"})
    got = http.get("/h.json", headers=ASK_ETAG)
    head = http.head("/h.json", headers=ASK_ETAG)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == str(len(got.content))
    assert head.headers["ETag"] == got.headers["ETag"]
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
    assert http.head("/h.json", params={"orderBy": "nope"}).status_code == 400
    rules = http.head("/.settings/rules.json", headers=OWNER)
    assert (rules.status_code, rules.content) == (200, b"")
    assert int(rules.headers["Content-Length"]) == len(http.get("/.settings/rules.json", headers=OWNER).content)


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "LOCK", "CONNECT"])
def test_an_unknown_method_gets_a_json_405_and_changes_nothing(http: httpx.Client, method: str) -> None:
    put(http, "/m", 1)
    response = http.request(method, "/m.json", content=b"2")
    assert method in error_of(response, 405)
    assert "PATCH" in response.headers["Allow"]
    assert http.get("/m.json").json() == 1


# -- queries -------------------------------------------------------------------------


def keys(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(response.json() or {})


@pytest.fixture
def scores(http: httpx.Client) -> httpx.Client:
    put(http, "/s", {"a": {"n": 10}, "b": {"n": 10}, "c": {"n": 20}, "d": {"n": 30}, "e": {"n": "x"}})
    return http


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"orderBy": '"n"', "startAfter": "10"}, ["c", "d", "e"]),
        ({"orderBy": '"n"', "startAfter": '10,"a"'}, ["b", "c", "d", "e"]),
        ({"orderBy": '"n"', "startAfter": '10,"[MAX_NAME]"'}, ["c", "d", "e"]),  # as the JS SDK sends it
        ({"orderBy": '"n"', "endBefore": "30"}, ["a", "b", "c"]),
        ({"orderBy": '"n"', "endBefore": '10,"b"'}, ["a"]),
        ({"orderBy": '"n"', "endBefore": '30,"[MIN_NAME]"'}, ["a", "b", "c"]),
        ({"orderBy": '"n"', "startAfter": "10", "endBefore": "30"}, ["c"]),
        ({"orderBy": '"n"', "startAfter": "10", "limitToFirst": "1"}, ["c"]),
        ({"orderBy": '"$key"', "startAfter": '"b"', "endBefore": '"e"'}, ["c", "d"]),
        ({"orderBy": '"$key"', "startAt": '"b"', "endBefore": '"d"'}, ["b", "c"]),
    ],
)
def test_start_after_and_end_before_exclude_their_bound(
    scores: httpx.Client, params: dict[str, str], expected: list[str]
) -> None:
    assert keys(scores.get("/s.json", params=params)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"orderBy": '"n"', "startAt": "1", "startAfter": "1"},
        {"orderBy": '"n"', "endAt": "1", "endBefore": "1"},
        {"orderBy": '"n"', "equalTo": "1", "startAfter": "0"},
        {"orderBy": '"$key"', "startAfter": "1"},
        {"startAfter": '"a"'},
        {"orderBy": '"n"', "endBefore": "{}"},
    ],
)
def test_bad_start_after_and_end_before_are_rejected(http: httpx.Client, params: dict[str, str]) -> None:
    error_of(http.get("/s.json", params=params), 400)


def test_order_by_given_twice_is_rejected(http: httpx.Client) -> None:
    assert "orderBy" in error_of(http.get('/s.json?orderBy="$key"&orderBy="n"'), 400)
    assert "orderBy" in error_of(http.get('/s.json?orderBy="n"&orderBy="n"&limitToFirst=1'), 400)


# -- parameters of reads on writes ----------------------------------------------------


@pytest.mark.parametrize("param", ["shallow=true", "callback=cb", "download=f.json", "format=export"])
@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_a_read_parameter_on_a_write_is_rejected_and_writes_nothing(
    http: httpx.Client, method: str, param: str
) -> None:
    put(http, "/w", {"keep": 1})
    response = http.request(method, f"/w.json?{param}", content=b'{"other": 2}')
    assert param.split("=")[0] in error_of(response, 400)
    assert http.get("/w.json").json() == {"keep": 1}


# -- firebase-tools: paged shallow listings, PATCH null -------------------------------


def listing(response: httpx.Response) -> list[str]:
    """The keys in the order the server sent them (JSON objects keep it)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(v is True for v in body.values()), body
    return list(body)


def test_shallow_with_limit_to_first_and_start_after_pages_through_keys_in_key_order(http: httpx.Client) -> None:
    put(http, "/big", {k: {"deep": k} for k in ["b", "10", "a", "2", "-1", "c", "a b"]})
    first = listing(http.get("/big.json", params={"shallow": "true", "limitToFirst": "3"}))
    assert first == ["-1", "2", "10"]  # integer keys first, numerically
    rest = listing(http.get("/big.json", params={"shallow": "true", "limitToFirst": "3", "startAfter": "10"}))
    assert rest == ["a", "a b", "b"]
    quoted = listing(http.get("/big.json", params={"shallow": "true", "limitToFirst": "9", "startAfter": '"a b"'}))
    assert quoted == ["b", "c"]
    assert http.get("/big.json", params={"shallow": "true", "startAfter": "c"}).json() is None
    assert http.get("/big.json", params={"shallow": "true", "limitToFirst": "0"}).json() is None


def test_patch_with_a_null_body_deletes_the_path(http: httpx.Client) -> None:
    put(http, "/p", {"gone": {"x": 1}, "kept": 2})
    response = http.patch("/p/gone.json", content=b"null")
    assert response.status_code == 200
    assert response.json() is None
    assert http.get("/p.json").json() == {"kept": 2}
    assert http.patch("/p/kept.json", content=b"null", params={"print": "silent"}).status_code == 204
    assert http.get("/p.json").json() is None


# -- download= -----------------------------------------------------------------------


def test_download_names_are_sent_safely_whatever_their_characters(http: httpx.Client) -> None:
    put(http, "/d", {"a": 1})
    plain = http.get("/d.json", params={"download": "backup.json"})
    assert plain.headers["Content-Disposition"] == 'attachment; filename="backup.json"'
    accented = http.get("/d.json", params={"download": 'réu "nion".json'})
    assert accented.status_code == 200
    assert accented.json() == {"a": 1}
    disposition = accented.headers["Content-Disposition"]
    assert disposition.isascii()
    assert "filename*=UTF-8''r%C3%A9u%20%22nion%22.json" in disposition
    for name in ["a\r\nSet-Cookie: x=1", "line\nbreak", "nul\x00", "tab\t"]:
        response = http.get("/d.json", params={"download": name})
        assert "download" in error_of(response, 400)
        assert "Set-Cookie" not in response.headers


# -- the index requirement ---------------------------------------------------------------


@pytest.fixture
def production(server_factory: Callable[..., Any]) -> Iterator[tuple[Any, httpx.Client]]:
    server = server_factory("--admin-token", "T0ken")
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": "Bearer T0ken"}) as client:
        put(client, "/dinos", {"a": {"height": 3}, "b": {"height": 1}})
        yield server, client


def test_production_mode_refuses_unindexed_child_and_value_queries_with_firebases_message(
    production: tuple[Any, httpx.Client],
) -> None:
    _, http = production
    by_height = http.get("/dinos.json", params={"orderBy": '"height"', "limitToFirst": "1"})
    assert error_of(by_height, 400) == (
        'Index not defined, add ".indexOn": "height", for path "/dinos", to the rules'
    )
    by_value = http.get("/dinos.json", params={"orderBy": '"$value"'})
    assert error_of(by_value, 400) == 'Index not defined, add ".indexOn": ".value", for path "/dinos", to the rules'
    assert keys(http.get("/dinos.json", params={"orderBy": '"$key"', "limitToFirst": "1"})) == ["a"]
    assert keys(http.get("/dinos.json", params={"orderBy": '"$priority"'})) == ["a", "b"]
    stream = http.get("/dinos.json", params={"orderBy": '"height"'}, headers={"Accept": "text/event-stream"})
    assert error_of(stream, 400).startswith("Index not defined")

    rules = {"rules": {".read": False, ".write": False, "dinos": {".indexOn": ["height", ".value"]}}}
    assert http.put("/.settings/rules.json", content=json.dumps(rules)).status_code == 200
    assert keys(http.get("/dinos.json", params={"orderBy": '"height"', "limitToFirst": "1"})) == ["b"]
    assert keys(http.get("/dinos.json", params={"orderBy": '"$value"'})) == ["a", "b"]


def test_production_mode_answers_a_caller_who_may_not_read_permission_denied_not_the_index(
    production: tuple[Any, httpx.Client],
) -> None:
    server, _ = production
    params = {"orderBy": '"height"'}
    assert error_of(httpx.get(server.url + "/dinos.json", params=params), 401) == "Permission denied"
    streamed = httpx.get(server.url + "/dinos.json", params=params, headers={"Accept": "text/event-stream"})
    assert error_of(streamed, 401) == "Permission denied"


def test_emulator_mode_serves_an_unindexed_query_and_logs_a_warning(server_factory: Callable[..., Any]) -> None:
    server = server_factory("--emulator")  # a process of its own: the warning is read from its log
    with httpx.Client(base_url=server.url) as http:
        put(http, "/dinos", {"a": {"height": 3}, "b": {"height": 1}})
        assert keys(http.get("/dinos.json", params={"orderBy": '"height"', "limitToFirst": "1"})) == ["b"]
    assert '".indexOn": "height"' in server.log()
