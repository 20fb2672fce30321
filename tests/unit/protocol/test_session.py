"""The per-connection protocol state: frames in, typed requests or immediate replies out."""

from __future__ import annotations

import json

from rtdb.protocol import messages
from rtdb.protocol.session import ListenEntry, Reply, ServerSession


def _session() -> ServerSession:
    return ServerSession(session_id="session-1", host="127.0.0.1:9000", namespace="demo")


def test_hello_is_the_handshake_with_numeric_ts() -> None:
    (frame,) = _session().hello(1795834514820)
    assert json.loads(frame) == {
        "t": "c",
        "d": {"t": "h", "d": {"ts": 1795834514820, "v": "5", "h": "127.0.0.1:9000", "s": "session-1"}},
    }


def test_ping_is_answered_with_a_pong_carrying_d() -> None:
    reply = _session().receive('{"t":"c","d":{"t":"p","d":{}}}')
    assert reply == Reply(('{"t":"c","d":{"t":"o","d":null}}',))


def test_keepalive_and_partial_messages_yield_nothing() -> None:
    session = _session()
    assert session.receive("0") is None
    assert session.receive("2") is None
    assert session.receive('{"t":"d","d":{"r":1,"a":"s",') is None
    request = session.receive('"b":{"c":{"sdk.node.12-19-0":1}}}}')
    assert isinstance(request, messages.Stats) and request.r == 1


def test_a_bad_request_is_answered_and_the_connection_survives() -> None:
    session = _session()
    reply = session.receive('{"t":"d","d":{"r":4,"a":"zz","b":{}}}')
    assert isinstance(reply, Reply)
    body = json.loads(reply.frames[0])
    assert body["d"]["r"] == 4 and body["d"]["b"]["s"] == "invalid_request"
    assert isinstance(session.receive('{"t":"d","d":{"r":5,"a":"n","b":{"p":"/a"}}}'), messages.Unlisten)


def test_listens_are_keyed_by_path_and_query_id() -> None:
    session = _session()
    a = ListenEntry(("a",), messages.WireQuery(), "default", None, None)
    b = ListenEntry(("a",), messages.WireQuery(l=1, vf="l"), '{"l":1,"vf":"l"}', None, 3)
    assert session.add_listen(a) is None
    assert session.add_listen(b) is None
    again = ListenEntry(("a",), messages.WireQuery(), "default", None, None)
    assert session.add_listen(again) is a
    assert session.remove_listen(("a",), '{"l":1,"vf":"l"}') is b
    assert session.remove_listen(("a",), '{"l":1,"vf":"l"}') is None
    assert [e.key for e in session.listens()] == [(("a",), "default")]
