"""Bad input against a real `rtdb serve --emulator`: over HTTP a 400 with Firebase's
``{"error": …}`` body, over the native WebSocket the request's status and an open socket
(or, for what is not a request at all, a close frame), and the data left as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from conftest import RunningServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(inproc_server: Any) -> Any:
    """The app in this test process (conftest's ``InProcessServer``); tests that need a process
    of their own start one with ``server_factory``."""
    return inproc_server

ADMIN = {"Authorization": "Bearer owner"}
SEED = {"a": 1, "b": {"c": "x"}}
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000
DEEP_ARRAY = "[" * 10_000 + "]" * 10_000
HUGE = "1" + "0" * 400


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as client:
        assert client.put("/seed.json", content=json.dumps(SEED)).status_code == 200
        yield client


def rejected(response: httpx.Response) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    return str(body["error"])


def stored(http: httpx.Client) -> Any:
    response = http.get("/.json")
    assert response.status_code == 200
    return response.json()


# -- REST ---------------------------------------------------------------------------------------


def test_a_body_nested_10000_deep_is_a_400(http: httpx.Client) -> None:
    for method in ("PUT", "POST", "PATCH"):
        for body in (DEEP_OBJECT, DEEP_ARRAY):
            assert "maximum depth" in rejected(http.request(method, "/seed.json", content=body)), method
    assert stored(http) == {"seed": SEED}


BIG_INTEGER_WRITES = [
    ("PUT", "/seed", HUGE),
    ("POST", "/seed", HUGE),
    ("PATCH", "/seed", '{"a":' + HUGE + "}"),
    ("PUT", "/seed/a", '{".value":1,".priority":' + HUGE + "}"),
    ("PUT", "/seed/.priority", HUGE),
    ("PUT", "/seed/a", '{".sv":{"increment":' + HUGE + "}}"),
    ("PATCH", "/seed", '{"a":{".sv":{"increment":-' + HUGE + "}}}"),
]


def test_an_integer_beyond_a_double_is_a_400(http: httpx.Client) -> None:
    for method, path, body in BIG_INTEGER_WRITES:
        assert "finite" in rejected(http.request(method, path + ".json", content=body)), (method, path, body)
    assert stored(http) == {"seed": SEED}


def test_a_path_that_is_not_utf8_is_a_400(http: httpx.Client) -> None:
    for raw in ("/%ff.json", "/%ED%A0%80.json", "/%C0%AF.json", "/seed/%ED%B0%80.json"):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            response = http.request(method, raw, content=b'{"x":1}' if method != "GET" else None)
            assert rejected(response) == "Invalid path: Invalid token in path", (method, raw)
    assert stored(http) == {"seed": SEED}


BAD_QUERIES = [
    {"orderBy": '"$key"', "limitToFirst": "99999999999999999999"},
    {"orderBy": '"$value"', "limitToLast": "99999999999999999999"},
    {"orderBy": '"$key"', "startAt": '"\\ud800"'},
    {"orderBy": '"$value"', "equalTo": '"\\ud800"'},
    {"orderBy": '"$value"', "startAt": "1" + "0" * 400},
]


def test_a_limit_or_bound_no_client_could_hold_is_a_400(http: httpx.Client) -> None:
    for params in BAD_QUERIES:
        rejected(http.get("/seed.json", params=params))
    assert http.get("/seed.json", params={"orderBy": '"$key"', "limitToFirst": "1"}).json() == {"a": 1}


# -- WebSocket (rtdb serve's native protocol) -------------------------------------------------------


@contextmanager
def _open(server: RunningServer) -> Iterator[ClientConnection]:
    with connect(f"ws://{server.host}/.ws?v=5&ns=default", open_timeout=5, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=5))["d"]["t"] == "h"
        ws.send(json.dumps({"t": "d", "d": {"r": 1, "a": "gauth", "b": {"cred": "owner"}}}))
        assert _answer(ws, 1)["s"] == "ok"
        yield ws


def _answer(ws: ClientConnection, r: int) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["t"] == "d" and message["d"].get("r") == r:
            return message["d"]["b"]  # type: ignore[no-any-return]


def _still_answers(ws: ClientConnection, r: int) -> Any:
    ws.send(json.dumps({"t": "d", "d": {"r": r, "a": "g", "b": {"p": "/seed"}}}))
    body = _answer(ws, r)
    assert body["s"] == "ok"
    return body["d"]


def test_a_ws_request_nested_10000_deep_is_answered_invalid_data_on_an_open_socket(
    http: httpx.Client, server: RunningServer
) -> None:
    with _open(server) as ws:
        for r, action in enumerate(["p", "m", "o", "om"], start=10):
            ws.send('{"t":"d","d":{"r":' + str(r) + ',"a":"' + action + '","b":{"p":"/seed","d":' + DEEP_OBJECT
                    + "}}}")
            body = _answer(ws, r)
            assert body["s"] == "invalid_data" and "maximum depth" in body["d"], action
            ws.send('{"t":"d","d":{"b":{"p":"/seed","d":' + DEEP_ARRAY + '},"a":"' + action + '","r":' + str(r + 10)
                    + "}}")
            assert _answer(ws, r + 10)["s"] == "invalid_data", action
        assert _still_answers(ws, 99) == SEED
    assert stored(http) == {"seed": SEED}  # no onDisconnect op was queued either


def test_a_ws_message_nested_10000_deep_without_a_request_number_gets_a_close_frame(server: RunningServer) -> None:
    with _open(server) as ws:
        ws.send('{"t":"d","d":{"a":"p","b":{"p":"/seed","d":' + DEEP_OBJECT + "}}}")
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1002  # a close frame, not a cut


BAD_WS_WRITES = [
    ("p", HUGE), ("m", '{"a":' + HUGE + "}"), ("o", HUGE), ("om", '{"a":' + HUGE + "}"),
    ("p", '{".value":1,".priority":' + HUGE + "}"), ("m", '{"a":{".sv":{"increment":' + HUGE + "}}}"),
    ("p", '"x\\ud800"'),
]


def test_a_ws_write_no_client_could_hold_is_answered_invalid_data(http: httpx.Client, server: RunningServer) -> None:
    with _open(server) as ws:
        for r, (action, data) in enumerate(BAD_WS_WRITES, start=10):
            ws.send('{"t":"d","d":{"r":' + str(r) + ',"a":"' + action + '","b":{"p":"/seed","d":' + data + "}}}")
            assert _answer(ws, r)["s"] == "invalid_data", (action, data)
        assert _still_answers(ws, 99) == SEED
    assert stored(http) == {"seed": SEED}


def test_a_ws_query_no_client_could_hold_is_answered_invalid_query(http: httpx.Client, server: RunningServer) -> None:
    queries = ['{"l":99999999999999999999,"vf":"l","i":".key"}', '{"sp":' + HUGE + ',"i":".value"}']
    with _open(server) as ws:
        for r, (action, query) in enumerate([(a, q) for a in ("q", "g") for q in queries], start=10):
            ws.send('{"t":"d","d":{"r":' + str(r) + ',"a":"' + action + '","b":{"p":"/seed","q":' + query + "}}}")
            assert _answer(ws, r)["s"] == "invalid_query", (action, query)
        assert _still_answers(ws, 99) == SEED
