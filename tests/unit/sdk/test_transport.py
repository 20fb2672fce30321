"""Database URLs and the client side of the wire protocol (no sockets)."""

from __future__ import annotations

import pytest
from msgspec import UNSET

from rtdb.protocol import messages as m
from rtdb.protocol.client import ClientProtocol, build_request
from rtdb.protocol.errors import FramingError
from rtdb_sdk.errors import InvalidArgument
from rtdb_sdk.transport import parse_database_url


def test_database_urls() -> None:
    url = parse_database_url("http://127.0.0.1:9000?ns=demo")
    assert url.ws_url() == "ws://127.0.0.1:9000/.ws?v=5&ns=demo"
    assert url.ws_url("session-1") == "ws://127.0.0.1:9000/.ws?v=5&ls=session-1&ns=demo"
    assert parse_database_url("https://proj.firebaseio.com").ws_url() == "wss://proj.firebaseio.com/.ws?v=5&ns=proj"
    assert parse_database_url("localhost:9000").namespace is None
    with pytest.raises(InvalidArgument):
        parse_database_url("ftp://x")


def test_requests_are_numbered_across_sockets_and_split_when_long() -> None:
    proto = ClientProtocol()
    r, request = proto.request("p", {"p": "/a", "d": "x" * 40000})
    frames = proto.frames(request)
    assert r == 1 and frames[0] == "3" and all(len(f) <= 16384 for f in frames[1:])
    proto.reset()
    assert proto.request("n", {"p": "/a"})[0] == 2
    get = build_request(3, "g", {"p": "/a"})
    assert isinstance(get, m.Get) and get.b.q == m.WireQuery()
    put = build_request(4, "p", {"p": "/a", "d": 1})
    assert isinstance(put, m.Put) and put.b.h is UNSET


def test_incoming_frames_assemble_and_decode() -> None:
    proto = ClientProtocol()
    text = '{"t":"d","d":{"a":"d","b":{"p":"a/b","d":{"x":"' + "y" * 100 + '"}}}}'
    assert proto.receive("2") is None
    assert proto.receive(text[:50]) is None
    push = proto.receive(text[50:])
    assert isinstance(push, m.DataPush) and push.b.p == "a/b"
    response = proto.receive('{"t":"d","d":{"r":7,"b":{"s":"ok","d":""}}}')
    assert isinstance(response, m.Response) and response.r == 7
    hello = proto.receive('{"t":"c","d":{"t":"h","d":{"ts":1,"v":"5","h":"x","s":"s"}}}')
    assert isinstance(hello, m.ServerControl) and isinstance(hello.d, m.Hello)
    with pytest.raises(FramingError):
        proto.receive("0")
