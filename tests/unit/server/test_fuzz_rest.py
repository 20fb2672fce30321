"""Property-based fuzzing of the REST API, in-process (``httpx.ASGITransport`` on ``create_app``).

Whatever the path, the query parameters, the method and the body, the server answers:
never a 5xx, every error in Firebase's ``{"error": "..."}`` shape, a rejected request
leaves the stored data as it was, and the next request is still served.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from unit.server.fuzz_values import LONE_SURROGATES, json_values

from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.server.auth import Authenticator
from rtdb.server.rest import RestApi
from rtdb.server.settings import Settings
from rtdb.server.sse import SseEndpoint

# Bodies nested 20,000 deep make long example reprs; hypothesis warns, which is no failure here.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

ADMIN = {"Authorization": "Bearer owner"}
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

values = json_values(max_leaves=16)


def nested(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels deep, built without recursion."""
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{".value":' * depth + "1" + "}" * depth




def json_texts(max_depth: int) -> st.SearchStrategy[str]:
    """JSON texts, valid or nearly: any value, nesting up to ``max_depth``, numbers out of range…"""
    depths = st.sampled_from([d for d in (31, 32, 33, 200, 900, 3000, 20_000) if d <= max_depth])
    return st.one_of(
        values.map(json.dumps),  # json.dumps writes big integers in full and surrogates as \ud800 escapes
        st.builds(nested, depths, st.sampled_from(["array", "object", "value"])),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1" + "0" * 400, "1e400", '"\\ud800"', '{"\\udc00":1}',
                         '{"a":1', "", " ", "\x00", "[1,]", "{'a':1}", "9" * 5000]),
    )


body_texts = json_texts(20_000)
bodies = st.one_of(body_texts.map(str.encode), st.binary(max_size=40))

# -- paths --------------------------------------------------------------------------------

segments = st.one_of(
    st.text(max_size=8).map(lambda s: quote(s, safe="", errors="surrogatepass")),  # lone surrogates as %ED%A0%80
    LONE_SURROGATES.map(lambda s: quote(s, safe="", errors="surrogatepass")),
    st.binary(min_size=1, max_size=4).map(lambda b: "".join(f"%{c:02X}" for c in b)),
    st.sampled_from(["a", "b", "..", ".", "%", "%2", "%zz", "%C0%AF", "%ff", "%2F", "%5C", "$", "[x]", "%23"]),
)
paths = st.one_of(
    st.lists(segments, max_size=5).map(lambda s: "/" + "/".join(s)),
    st.integers(min_value=30, max_value=40).map(lambda n: "/" + "/".join(["k"] * n)),
)
suffixes = st.sampled_from([".json", ".json", ".json", "/.priority.json", "", ".JSON"])

# -- query parameters -----------------------------------------------------------------------

PARAMS = ["orderBy", "startAt", "startAfter", "endAt", "endBefore", "equalTo", "limitToFirst", "limitToLast",
          "shallow", "print", "format", "download", "callback", "writeSizeLimit", "timeout"]
param_values = st.one_of(
    json_texts(3000),  # a URL is at most 64 KiB
    st.text(max_size=10),
    st.sampled_from(['"$key"', '"$value"', '"$priority"', '"a"', '"a/b"', '"\\ud800"', "true", "silent", "pretty",
                     "export", "99999999999999999999", "-1", "1e3", "1,\"\\ud800\"", '"a","\\udfff"', "NaN",
                     "10s", "0ms", "16min", "\u0661s", "9" * 4000 + "s", "1" + "0" * 30 + "min"]),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
)
queries = st.dictionaries(st.sampled_from(PARAMS), param_values, max_size=4)
methods = st.sampled_from(["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"])
as_admin = st.booleans()


def _query_string(params: dict[str, str]) -> bytes:
    return "&".join(
        f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in params.items()
    ).encode()


class RestHarness:
    """The REST API (the ASGI app ``create_app`` mounts at ``/``) on a temporary data
    directory, called through ``httpx.ASGITransport`` on an event loop of its own
    (hypothesis drives plain functions)."""

    def __init__(self, tmp_path: Path) -> None:
        settings_ = Settings(data_dir=tmp_path, emulator=True)
        self.engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=True)))
        api = RestApi(self.engine, settings_, Authenticator(settings_), SseEndpoint(self.engine, settings_))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://fuzz")
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def request(self, method: str, raw_path: str, query: bytes = b"", body: bytes = b"",
                      headers: dict[str, str] | None = None) -> httpx.Response:
        url = self.client.base_url.copy_with(raw_path=raw_path.encode() + (b"?" + query if query else b""))
        return await self.client.request(method, url, content=body if method not in ("GET", "HEAD") else None,
                                         headers=headers)

    async def snapshot(self) -> Any:
        response = await self.request("GET", "/.json", b"format=export", headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.engine.close())
        self.loop.close()


@pytest.fixture
def rest(tmp_path: Path) -> Iterator[RestHarness]:
    harness = RestHarness(tmp_path)
    try:
        harness.run(harness.request("PUT", "/seed.json", body=b'{"a":1,"b":{"c":"x"},"n":[1,2]}', headers=ADMIN))
        yield harness
    finally:
        harness.close()


def assert_answered_well(response: httpx.Response, method: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400 and method != "HEAD":
        body = response.json()
        assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str), body
        assert body["error"] != "Internal server error"


def check_request(rest: RestHarness, method: str, raw_path: str, query: bytes, body: bytes, admin: bool) -> None:
    assume(len(query) < 60_000)  # beyond what httpx (or any server) takes in a URL
    async def go() -> None:
        before = await rest.snapshot()
        response = await rest.request(method, raw_path, query, body, ADMIN if admin else None)
        assert_answered_well(response, method)
        if response.status_code >= 400 or method in ("GET", "HEAD"):
            assert await rest.snapshot() == before, "a rejected request (or a read) changed the data"
        alive = await rest.request("GET", "/seed/a.json", headers=ADMIN)  # the server still answers
        assert alive.status_code == 200

    rest.run(go())


def test_fuzzed_paths_parameters_and_bodies_never_get_a_5xx(rest: RestHarness) -> None:
    @FUZZ
    @given(method=methods, path=paths, suffix=suffixes, query=queries, body=bodies, admin=as_admin)
    def fuzz(method: str, path: str, suffix: str, query: dict[str, str], body: bytes, admin: bool) -> None:
        check_request(rest, method, path + suffix, _query_string(query), body, admin)

    fuzz()


def test_fuzzed_write_bodies_at_a_valid_path_never_get_a_5xx(rest: RestHarness) -> None:
    @FUZZ
    @given(method=st.sampled_from(["PUT", "POST", "PATCH"]), path=st.sampled_from(["/seed", "/x", "/seed/b", "/"]),
           body=body_texts)
    def fuzz(method: str, path: str, body: str) -> None:
        check_request(rest, method, path + ".json", b"", body.encode(), True)

    fuzz()


def test_fuzzed_query_parameters_on_a_valid_path_never_get_a_5xx(rest: RestHarness) -> None:
    order = st.sampled_from(['"$key"', '"$value"', '"$priority"', '"c"', '"a/b"'])

    @FUZZ
    @given(order=order, query=queries)
    def fuzz(order: str, query: dict[str, str]) -> None:
        check_request(rest, "GET", "/seed.json", _query_string({"orderBy": order, **query}), b"", True)

    fuzz()


# -- the cases the fuzzers found, one by one ---------------------------------------------------


def _bad(rest: RestHarness, method: str, raw_path: str, body: bytes = b"", query: bytes = b"") -> str:
    async def go() -> str:
        before = await rest.snapshot()
        response = await rest.request(method, raw_path, query, body, ADMIN)
        assert response.status_code == 400, (response.status_code, response.text)
        assert await rest.snapshot() == before
        return str(response.json()["error"])

    result: str = rest.run(go())
    return result


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
@pytest.mark.parametrize("body", [
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
])
def test_a_body_nested_thousands_deep_is_a_400(rest: RestHarness, method: str, body: str) -> None:
    assert "maximum depth" in _bad(rest, method, "/x.json", body.encode())


@pytest.mark.parametrize(("method", "body"), [
    ("PUT", "1" + "0" * 400),
    ("POST", "-1" + "0" * 400),
    ("PATCH", '{"a":1' + "0" * 400 + "}"),
    ("PUT", '{"a":{".value":1,".priority":1' + "0" * 400 + "}}"),
    ("PUT", '{"a":{".sv":{"increment":1' + "0" * 400 + "}}}"),
])
def test_an_integer_beyond_a_double_is_a_400(rest: RestHarness, method: str, body: str) -> None:
    assert "finite" in _bad(rest, method, "/seed.json", body.encode())


@pytest.mark.parametrize("raw_path", ["/%ff.json", "/%ED%A0%80.json", "/%C0%AF.json", "/seed/%ED%B0%80x.json"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_path_that_is_not_utf8_is_a_400(rest: RestHarness, raw_path: str, method: str) -> None:
    assert _bad(rest, method, raw_path, b"1") == "Invalid path: Invalid token in path"


@pytest.mark.parametrize("query", [
    'orderBy="$key"&limitToFirst=99999999999999999999',
    'orderBy="$value"&limitToLast=99999999999999999999',
    'orderBy="$key"&startAt="\\ud800"',
    'orderBy="$value"&equalTo="\\ud800"',
    'orderBy="$value"&endAt="a","\\udfff"',
    'orderBy="$value"&startAt=NaN',
    'orderBy="$value"&startAt=1' + "0" * 400,
    'orderBy="$value"&startAt=' + "[" * 10_000 + "]" * 10_000,
])
def test_a_limit_or_bound_no_client_could_hold_is_a_400(rest: RestHarness, query: str) -> None:
    _bad(rest, "GET", "/seed.json", query=quote(query, safe="=&").encode())


def test_limits_up_to_2_to_the_53_still_work(rest: RestHarness) -> None:
    response = rest.run(rest.request("GET", "/seed.json", _query_string({"orderBy": '"$key"',
                                                                         "limitToFirst": str(2**53)}), b"", ADMIN))
    assert response.status_code == 200 and response.json() == {"a": 1, "b": {"c": "x"}, "n": [1, 2]}


def test_a_timeout_of_thousands_of_digits_is_a_400(rest: RestHarness) -> None:
    _bad(rest, "GET", "/seed.json", query=b"timeout=" + b"9" * 5000 + b"s")


def test_a_shallow_start_after_with_a_lone_surrogate_is_a_400_and_one_nested_deep_is_a_bare_key(
    rest: RestHarness,
) -> None:
    _bad(rest, "GET", "/seed.json", query=b"shallow=true&startAfter=%22%5Cud800%22")
    deep = b"shallow=true&startAfter=" + b"[" * 5000 + b"]" * 5000
    response = rest.run(rest.request("GET", "/seed.json", deep, b"", ADMIN))
    assert response.status_code == 200 and response.json() == {"a": True, "b": True, "n": True}
