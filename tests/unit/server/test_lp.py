"""Long-polling pieces that need no server: the ASCII-safe JSON of answers and the reassembly of
the client's segments (the protocol itself is tested end to end in tests/e2e/test_long_polling.py
and in a real browser in tests/browser)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtdb.server.lp import (
    MAX_SEGMENT_AHEAD,
    PONG,
    SWITCH_ACK,
    BadSegments,
    LpSession,
    Secondary,
    ascii_json,
    message_text,
)


def _b64(message: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(message).encode()).decode().replace("=", ".")


class _Outbox:
    on_ready = None


class _Connection:
    outbox = _Outbox()


def _session() -> LpSession:
    return LpSession(_Endpoint(), "id", _Connection())  # type: ignore[arg-type]


class _Endpoint:
    idle_s = 60.0


def _params(*segments: tuple[int, int, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (seg, ts, d) in enumerate(segments):
        out.update({f"seg{i}": str(seg), f"ts{i}": str(ts), f"d{i}": d})
    return out


def test_answers_are_ascii_and_still_the_same_json() -> None:
    text = json.dumps({"s": "héllo \u2028 😀 \u2029"}, ensure_ascii=False)
    out = ascii_json(text)
    assert out.isascii() and "\\u2028" in out and "\\ud83d\\ude00" in out
    assert json.loads(out) == json.loads(text)


def test_a_framed_message_is_joined_without_its_count_frame() -> None:
    assert message_text(("3", "ab", "cd", "ef")) == "abcdef"
    assert message_text(('{"t":"d"}',)) == '{"t":"d"}'


def test_segments_reassemble_in_seg_order_whatever_the_arrival_order() -> None:
    session = _session()
    message = {"t": "d", "d": {"r": 1, "a": "p", "b": {"p": "/x", "d": "ü" * 3000}}}
    data = _b64(message)
    parts = [data[i:i + 1840] for i in range(0, len(data), 1840)]
    assert len(parts) > 2
    for seg in reversed(range(1, len(parts))):
        assert session.ingest(_params((seg, len(parts), parts[seg])), 0.0) == []
    assert session.hole_since == 0.0
    [text] = session.ingest(_params((0, len(parts), parts[0])), 1.0)
    assert json.loads(text) == message
    assert session.segments == {} and session.hole_since is None and session.next_seg == len(parts)


def test_several_small_messages_in_one_request_come_out_in_order_and_replays_are_ignored() -> None:
    session = _session()
    a, b = {"t": "d", "d": {"r": 1, "a": "s", "b": {}}}, {"t": "c", "d": {"t": "n", "d": {}}}
    params = _params((0, 1, _b64(a)), (1, 1, _b64(b)))
    assert [json.loads(t) for t in session.ingest(params, 0.0)] == [a, b]
    assert session.ingest(params, 0.0) == []  # the same segments again: already delivered


@pytest.mark.parametrize("params", [
    _params((0, 1, "not base64!")),
    _params((0, 1, "")),
    {"seg0": "-1", "ts0": "1", "d0": "eyJ9"},
    {"seg0": "0", "ts0": "0", "d0": "eyJ9"},
    _params((MAX_SEGMENT_AHEAD + 1, 1, "eyJ9")),
    _params((0, 1, "x" * 1871)),
    _params((0, 1, base64.urlsafe_b64encode(b"\xff\xfe").decode())),  # not UTF-8
    _params((0, 2, "eyJ0"), (1, 3, "IjoiIn0.")),  # two lengths for one message
])
def test_segments_that_cannot_be_a_message_end_the_session(params: dict[str, str]) -> None:
    with pytest.raises(BadSegments):
        _session().ingest(params, 0.0)


def _secondary() -> tuple[Secondary, list[str]]:
    written: list[str] = []
    secondary = Secondary(_session(), "h", written.append, lambda *_: None, lambda _: None)
    return secondary, written


@pytest.mark.parametrize("spacing", ["", " "])
def test_the_upgrade_socket_knows_control_messages_in_any_json_spacing(spacing: str) -> None:
    secondary, written = _secondary()
    sep = "," + spacing
    colon = ":" + spacing
    inner = "{" + sep.join([f'"t"{colon}"p"', f'"d"{colon}' + "{}"]) + "}"
    ping = "{" + sep.join([f'"t"{colon}"c"', f'"d"{colon}' + inner]) + "}"
    ack = ping.replace('"p"', '"a"')
    data = json.dumps({"t": "d", "d": {"r": 9, "a": "q", "b": {"p": "/x", "h": ""}}}, separators=(sep, colon))
    assert written == [SWITCH_ACK]
    assert secondary.receive(" " + ping)
    assert secondary.receive(ack)
    assert secondary.receive(data)
    assert written == [SWITCH_ACK, PONG]
    assert secondary.acked_at is not None
    assert secondary.buffered == [data]


def test_the_upgrade_socket_closes_on_a_control_message_without_a_kind() -> None:
    secondary, _ = _secondary()
    assert not secondary.receive('{"t": "c", "d": 5}')
