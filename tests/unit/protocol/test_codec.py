"""Every captured frame decodes into its typed message and re-encodes to the same JSON."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from rtdb.protocol import codec, messages
from rtdb.protocol.errors import BadRequest, ProtocolError

from .cases import load_cases

CLIENT = load_cases("client_frames.json")
SERVER = load_cases("server_frames.json")

ACTION_TYPES: dict[str, type[Any]] = {
    "s": messages.Stats,
    "auth": messages.Auth,
    "gauth": messages.GAuth,
    "unauth": messages.Unauth,
    "appcheck": messages.AppCheck,
    "unappeck": messages.UnAppCheck,
    "unappcheck": messages.UnAppCheckLong,
    "q": messages.Listen,
    "n": messages.Unlisten,
    "p": messages.Put,
    "m": messages.Merge,
    "g": messages.Get,
    "o": messages.OnDisconnectPut,
    "om": messages.OnDisconnectMerge,
    "oc": messages.OnDisconnectCancel,
}
CONTROL_TYPES: dict[str, type[Any]] = {"p": messages.Ping, "a": messages.SwitchAck, "n": messages.EndTransmission}


@pytest.mark.parametrize("case", CLIENT["cases"], ids=lambda c: c["kind"] + ":" + c["frame"][:60])
def test_captured_client_frame_decodes_to_its_typed_request_and_round_trips(case: dict[str, Any]) -> None:
    message = codec.decode_client(case["frame"])
    kind: str = case["kind"]
    if kind.startswith("control:"):
        assert isinstance(message, messages.ClientControl)
        assert type(message.d) is CONTROL_TYPES[kind.removeprefix("control:")]
    else:
        assert isinstance(message, messages.ClientData)
        assert type(message.d) is ACTION_TYPES[kind]
    original = json.loads(case["frame"])
    assert json.loads(codec.encode_client(message)) == original


@pytest.mark.parametrize("case", CLIENT["invalid"], ids=lambda c: c["frame"][:40])
def test_invalid_client_frame_has_the_documented_outcome(case: dict[str, Any]) -> None:
    outcome = case["outcome"]
    if outcome == "ignored":
        assert codec.decode_client(case["frame"]) is None
    elif outcome == "bad_request":
        with pytest.raises(BadRequest) as info:
            codec.decode_client(case["frame"])
        assert info.value.request_id == case["r"]
    else:
        with pytest.raises(ProtocolError) as perr:
            codec.decode_client(case["frame"])
        assert not isinstance(perr.value, BadRequest)


@pytest.mark.parametrize("case", SERVER["cases"], ids=lambda c: c["kind"] + ":" + c["frame"][:60])
def test_captured_server_frame_decodes_and_re_encodes_identically(case: dict[str, Any]) -> None:
    if case.get("outcome") == "protocol_error":
        with pytest.raises(ProtocolError):
            codec.decode_server(case["frame"])
        return
    decoded = codec.decode_server(case["frame"])
    wrapped: messages.ServerMessage
    if isinstance(decoded, messages.ServerControl):
        wrapped = decoded
    else:
        wrapped = messages.ServerData(decoded)
    assert json.loads(codec.encode(wrapped)) == json.loads(case["frame"])


def test_server_helpers_produce_the_captured_shapes() -> None:
    assert codec.handshake_frames(ts=1795834514820, host="127.0.0.1:19500", session_id="session-1") == (
        '{"t":"c","d":{"t":"h","d":{"ts":1795834514820,"v":"5","h":"127.0.0.1:19500","s":"session-1"}}}',
    )
    assert codec.PONG_FRAMES == ('{"t":"c","d":{"t":"o","d":null}}',)
    assert codec.response_frames(8, "ok", {}) == ('{"t":"d","d":{"r":8,"b":{"s":"ok","d":{}}}}',)
    assert codec.response_frames(9) == ('{"t":"d","d":{"r":9,"b":{"s":"ok","d":""}}}',)
    assert codec.data_push_frames(("users", "bob"), {"age": 5, "name": "Bob"}) == (
        '{"t":"d","d":{"a":"d","b":{"p":"users/bob","d":{"age":5,"name":"Bob"}}}}',
    )
    assert codec.data_push_frames(("scores",), {"c": {"score": 25}}, tag=2) == (
        '{"t":"d","d":{"a":"d","b":{"p":"scores","d":{"c":{"score":25}},"t":2}}}',
    )
    assert codec.merge_push_frames(("presence", "carol"), {"state": "away", "n": 1}) == (
        '{"t":"d","d":{"a":"m","b":{"p":"presence/carol","d":{"state":"away","n":1}}}}',
    )
    assert codec.data_push_frames((), None) == ('{"t":"d","d":{"a":"d","b":{"p":"","d":null}}}',)


def test_raw_subtrees_are_embedded_without_re_encoding() -> None:
    raw = msgspec.Raw(b'{"k":[1,2]}')
    assert codec.data_push_frames(("a",), raw) == ('{"t":"d","d":{"a":"d","b":{"p":"a","d":{"k":[1,2]}}}}',)


def test_revoke_push_echoes_the_query_object() -> None:
    query = messages.WireQuery(sp=10, sin=True, l=2, vf="r", i="score")
    frames = codec.push_frames(messages.RevokePush(messages.RevokeBody("scores", [query])))
    assert json.loads(frames[0]) == {
        "t": "d",
        "d": {"a": "c", "b": {"p": "scores", "q": [{"sp": 10, "sin": True, "l": 2, "vf": "r", "i": "score"}]}},
    }


def test_wire_query_keeps_null_bounds_apart_from_absent_ones() -> None:
    message = codec.decode_client('{"t":"d","d":{"r":1,"a":"g","b":{"p":"/a","q":{"sp":null,"sin":true}}}}')
    assert isinstance(message, messages.ClientData) and isinstance(message.d, messages.Get)
    q = message.d.b.q
    assert isinstance(q, messages.WireQuery)
    assert q.sp is None and q.ep is msgspec.UNSET


DEEP = '{"a":' * 10_000 + "1" + "}" * 10_000


@pytest.mark.parametrize("text", [
    '{"t":"d","d":{"r":41,"a":"p","b":{"p":"/x","d":' + DEEP + "}}}",  # the SDKs' key order
    '{"d":{"b":{"p":"/x","d":' + DEEP + '},"a":"m","r":41},"t":"d"}',  # any other
    '{"t":"d","d":{"b":{"p":"/x","q":{"sp":' + "[" * 10_000 + "]" * 10_000 + '}},"r":41,"a":"q"}}',
    '{"t":"d","d":{"r":41,"a":"","b":{"p":"/x","d":' + DEEP + "}}}",  # an action the decoder refuses first
])
def test_a_request_nested_thousands_deep_is_a_bad_request_with_its_number(text: str) -> None:
    with pytest.raises(BadRequest, match="maximum depth") as info:
        codec.decode_client(text)
    assert info.value.request_id == 41 and info.value.status == "invalid_data"


def test_a_message_nested_thousands_deep_without_a_request_number_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.decode_client('{"t":"d","d":{"a":"p","b":{"p":"/x","d":' + DEEP + "}}}")


@pytest.mark.parametrize("text", [
    '{"t":"d","d":{"r":42,"a":"p","b":{"p":"/x","d":"a\\ud800"}}}',
    '{"t":"d","d":{"b":{"p":"/\\udc00","d":1},"r":42,"a":"p"}}',
    '{"t":"d","d":{"b":{"p":"/\\udc00","d":' + DEEP + '},"r":42,"a":"p"}}',
])
def test_a_request_with_a_lone_surrogate_escape_is_a_bad_request_with_its_number(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        codec.decode_client(text)
    assert info.value.request_id == 42 and info.value.status == "invalid_data"


def test_cut_deep_replaces_what_opens_below_the_depth_and_skips_strings() -> None:
    assert codec.cut_deep('[[[[1]]],[[["]]"]]]]', 2) == "[[null],[null]]"
    assert codec.cut_deep('{"a":{"b":{"c":1}},"r":1}', 1) == '{"a":null,"r":1}'
    assert codec.cut_deep('{"a":{"b":[1]}}', 5) == '{"a":{"b":[1]}}'
