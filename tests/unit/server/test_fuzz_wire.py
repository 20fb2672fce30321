"""Property-based fuzzing of every wire-protocol message, in-process through the native
protocol ``rtdb serve`` runs (the client of ``wire_client.py``; a browser's text frames, so
lone surrogates arrive as U+FFFD).

Whatever a client sends, the server answers each request it can name (its ``r``) with a
status (never ``internal_error``) and keeps the connection; what is not a message at all
closes it with a close frame (1002), never by dropping it. A rejected request leaves the
stored data as it was, and the server still answers the next request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.server.fuzz_values import HUGE_INTEGERS, LONE_SURROGATES, json_values, keys
from unit.server.wire_client import Client, connect

from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.protocol.session import ServerSession
from rtdb.server.auth import Authenticator
from rtdb.server.settings import Settings
from rtdb.server.ws import WsEndpoint

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")  # deep texts have long reprs

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACTIONS = ["s", "auth", "gauth", "unauth", "appcheck", "unappeck", "unappcheck", "q", "n", "p", "m", "g", "o", "om",
           "oc"]
CLOSE_PROTOCOL_ERROR = 1002

values = json_values(max_leaves=12)
wire_paths = st.one_of(
    st.text(max_size=12),
    LONE_SURROGATES,
    st.sampled_from(["/", "/a", "/a/b", "/.priority", "/a/.priority", "/a/.b", "/a$", "", "/" * 40]),
    st.integers(min_value=30, max_value=34).map(lambda n: "/k" * n),
)
wire_queries = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={
        "sp": values, "sn": st.one_of(keys, values), "sin": values,
        "ep": values, "en": st.one_of(keys, values), "ein": values,
        "l": st.one_of(st.integers(min_value=-5, max_value=50), HUGE_INTEGERS, values),
        "vf": st.one_of(st.sampled_from(["l", "r", "x"]), values),
        "i": st.one_of(st.sampled_from([".key", ".value", ".priority", "a", "a/b", "", "$x", "a/.priority"]), keys),
    }),
)
bodies = st.one_of(
    values,
    st.fixed_dictionaries({}, optional={
        "p": st.one_of(wire_paths, values), "d": values, "h": st.one_of(st.text(max_size=30), values),
        "q": wire_queries, "t": st.one_of(st.integers(), HUGE_INTEGERS, values),
        "c": values, "cred": st.one_of(st.sampled_from(["owner", "x.y.z", ""]), values), "noauth": values,
        "authvar": values, "token": values,
    }),
)
request_ids = st.one_of(st.integers(min_value=1, max_value=10**6), HUGE_INTEGERS, st.integers(max_value=0))


def nested(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels deep, built without recursion."""
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{".value":' * depth + "1" + "}" * depth


deep = st.builds(nested, st.sampled_from([31, 33, 900, 3000, 20_000]), st.sampled_from(["array", "object", "value"]))


class Envelope:
    """A data request the server can name: whatever else is wrong, it must get an answer."""

    def __init__(self, r: int, text: str) -> None:
        self.r = r
        self.text = text

    def __repr__(self) -> str:
        return f"Envelope({self.r}, {self.text[:300]!r}{'…' if len(self.text) > 300 else ''})"


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    """``{"t":"d","d":{"r":…,"a":…,"b":…}}`` with any action and body, the deep ones spliced in as text."""
    r = draw(request_ids)
    action = draw(st.one_of(st.sampled_from(ACTIONS), st.text(max_size=5)))
    if draw(st.booleans()):
        body = json.dumps(draw(bodies))
    else:  # something nested thousands deep where the server looks: the data, a query bound, the body
        where = draw(st.sampled_from(["d", "q.sp", "q.ep", "b", "authvar", "c"]))
        inner = draw(deep)
        p = json.dumps(draw(wire_paths))
        body = {
            "d": f'{{"p":{p},"d":{inner}}}',
            "q.sp": f'{{"p":{p},"q":{{"sp":{inner}}}}}',
            "q.ep": f'{{"p":{p},"q":{{"ep":{inner},"l":1}}}}',
            "b": inner,
            "authvar": f'{{"cred":"owner","authvar":{inner}}}',
            "c": f'{{"c":{inner}}}',
        }[where]
    head = f'"r":{r},"a":{json.dumps(action)}'
    if draw(st.booleans()):  # the SDKs' key order
        text = f'{{"t":"d","d":{{{head},"b":{body}}}}}'
    else:
        text = f'{{"d":{{"b":{body},{head}}},"t":"d"}}'
    return Envelope(r, text)




def _not_a_count_frame(text: str) -> bool:
    """All digits (but "0") is a count frame: the frames after it, the probe too, make one message."""
    return text == "0" or not (text.isascii() and text.isdigit() and len(text) <= 10)


raw_texts = st.one_of(
    st.text(max_size=40),
    values.map(json.dumps),
    deep,
    st.builds(lambda d: '{"t":"d","d":{"a":"p","b":{"p":"/a","d":' + d + "}}}", deep),  # no r to answer
    st.sampled_from(['{"t":"c","d":{"t":"p","d":{}}}', '{"t":"c","d":{"t":"zz"}}', '{"t":"x"}', "{}", "[]", "0",
                     "99999999999", '{"t":"d","d":{"r":"x","a":"p"}}', '{"t":"d"}', '{"t":"d","d":7}']),
).filter(_not_a_count_frame)


class WireHarness:
    """A :class:`WsEndpoint` on a temporary data directory, on an event loop of its own
    (hypothesis drives plain functions): a fuzzed connection and an admin that reads."""

    def __init__(self, tmp_path: Path) -> None:
        settings_ = Settings(data_dir=tmp_path, emulator=True)
        self.engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=True)))
        self.endpoint = WsEndpoint(self.engine, settings_, Authenticator(settings_))
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(10**7)
        self.reader: Client | None = None
        self.client: Client | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def start(self) -> None:
        self.reader = await connect(self.endpoint)
        await self.reader.call("p", {"p": "/seed", "d": {"a": 1, "b": {"c": "x"}, "n": [1, 2]}})
        self.client = await connect(self.endpoint)

    async def snapshot(self) -> Any:
        assert self.reader is not None
        _, body = await self.reader.call("g", {"p": "/"})
        assert body["s"] == "ok", body
        return body["d"]

    async def exchange(self, text: str) -> tuple[list[dict[str, Any]], int | None]:
        """Send ``text``, then a stats request; the messages up to its answer, or the close code."""
        client = self.client
        assert client is not None
        sentinel = next(self.ids)
        client.send_raw(text)
        client.send_raw(json.dumps({"t": "d", "d": {"r": sentinel, "a": "s", "b": {"c": {}}}}))
        seen: list[dict[str, Any]] = []
        try:
            while True:
                message = await client.message()
                seen.append(message)
                if message.get("t") == "d" and message["d"].get("r") == sentinel:
                    assert message["d"]["b"]["s"] == "ok"
                    return seen, None
        except ConnectionError as closed:
            code = int(str(closed).rsplit(" ", 1)[-1])
            await client.close()  # the socket goes; the connection ended cleanly: no exception
            self.client = await connect(self.endpoint)
            return seen, code

    async def forget_on_disconnect(self) -> None:
        """Cancel the fuzzed connection's onDisconnect ops: they would write when it closes."""
        assert self.client is not None
        _, body = await self.client.call("oc", {"p": "/"})
        assert body["s"] == "ok"

    def close(self) -> None:
        async def end() -> None:
            for client in (self.client, self.reader):
                if client is not None:
                    await client.close()
            await self.engine.close()

        self.run(end())
        self.loop.close()


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[WireHarness]:
    harness = WireHarness(tmp_path)
    try:
        harness.run(harness.start())
        yield harness
    finally:
        harness.close()


def _statuses(seen: list[dict[str, Any]]) -> dict[int, str]:
    return {m["d"]["r"]: m["d"]["b"]["s"] for m in seen if m.get("t") == "d" and "r" in m["d"]}


def check_envelope(wire: WireHarness, envelope: Envelope) -> None:
    async def go() -> None:
        before = await wire.snapshot()
        seen, closed = await wire.exchange(envelope.text)
        assert closed is None, f"the connection was closed ({closed}) instead of answering r={envelope.r}"
        statuses = _statuses(seen)
        assert envelope.r in statuses, seen
        assert "internal_error" not in statuses.values(), seen
        if statuses[envelope.r] != "ok":
            assert await wire.snapshot() == before, "a rejected request changed the data"
        await wire.forget_on_disconnect()

    wire.run(go())


def check_raw(wire: WireHarness, text: str) -> None:
    async def go() -> None:
        before = await wire.snapshot()
        seen, closed = await wire.exchange(text)
        assert closed in (None, CLOSE_PROTOCOL_ERROR), closed
        assert "internal_error" not in _statuses(seen).values(), seen
        assert await wire.snapshot() == before
        await wire.forget_on_disconnect()

    wire.run(go())


def test_every_fuzzed_request_is_answered_without_internal_error(wire: WireHarness) -> None:
    @FUZZ
    @given(envelope=envelopes())
    def fuzz(envelope: Envelope) -> None:
        check_envelope(wire, envelope)

    fuzz()


def test_fuzzed_text_that_is_no_request_is_ignored_or_closes_with_a_close_frame(wire: WireHarness) -> None:
    @FUZZ
    @given(text=raw_texts)
    def fuzz(text: str) -> None:
        check_raw(wire, text)

    fuzz()


# -- the cases the issue lists, one by one ---------------------------------------------------------


async def _answer(wire: WireHarness, text: str, r: int) -> tuple[str, Any]:
    before = await wire.snapshot()
    seen, closed = await wire.exchange(text)
    assert closed is None
    body = next(m["d"]["b"] for m in seen if m.get("t") == "d" and m["d"].get("r") == r)
    if body["s"] != "ok":
        assert await wire.snapshot() == before
    return body["s"], body["d"]


@pytest.mark.parametrize("action", ["p", "m", "o", "om"])
@pytest.mark.parametrize("sdk_order", [True, False])
def test_a_request_nested_thousands_deep_is_answered_invalid_data(wire: WireHarness, action: str,
                                                                   sdk_order: bool) -> None:
    data = '{"a":' * 10_000 + "1" + "}" * 10_000
    if sdk_order:
        text = f'{{"t":"d","d":{{"r":7,"a":"{action}","b":{{"p":"/seed","d":{data}}}}}}}'
    else:
        text = f'{{"t":"d","d":{{"b":{{"p":"/seed","d":{data}}},"a":"{action}","r":7}}}}'
    status, message = wire.run(_answer(wire, text, 7))
    assert status == "invalid_data" and "maximum depth" in message


@pytest.mark.parametrize(("action", "data"), [
    ("p", 10**400), ("p", {"a": -(10**400)}), ("p", {".value": 1, ".priority": 10**400}),
    ("p", {".sv": {"increment": 10**400}}), ("m", {"a": 10**400}), ("m", {"a/b": {".sv": {"increment": 10**400}}}),
    ("o", 10**400), ("om", {"a": 10**400}),
])
def test_an_integer_beyond_a_double_is_answered_invalid_data(wire: WireHarness, action: str, data: Any) -> None:
    text = json.dumps({"t": "d", "d": {"r": 8, "a": action, "b": {"p": "/seed", "d": data}}})
    assert wire.run(_answer(wire, text, 8))[0] == "invalid_data"


@pytest.mark.parametrize("action", ["q", "g"])
@pytest.mark.parametrize("query", [
    {"l": 99999999999999999999, "vf": "l", "i": ".key"},
    {"l": 2**53 + 1, "vf": "r"},
    {"sp": 10**400, "i": ".value"},
    {"ep": 1, "en": "x", "sp": -(10**400), "i": ".value"},
])
def test_a_limit_or_bound_no_client_could_hold_is_answered_invalid_query(wire: WireHarness, action: str,
                                                                         query: dict[str, Any]) -> None:
    text = json.dumps({"t": "d", "d": {"r": 9, "a": action, "b": {"p": "/seed", "q": query}}})
    assert wire.run(_answer(wire, text, 9))[0] == "invalid_query"


class _Exploding(ServerSession):
    def receive(self, frame: str) -> Any:
        raise RuntimeError("a bug in reading messages")


def test_a_message_that_breaks_the_reader_closes_with_1011_not_a_dropped_socket(wire: WireHarness) -> None:
    """Whatever goes wrong reading a message, the client gets a close frame (here: a session
    whose ``receive`` fails, which no input is known to cause any more)."""

    async def go() -> None:
        connection = list(wire.endpoint.connections.values())[-1]  # the fuzzed one, opened after the reader
        old = connection.session
        connection.session = _Exploding(session_id=old.session_id, host=old.host, namespace=old.namespace)
        _, closed = await wire.exchange('{"t":"d","d":{"r":1,"a":"s","b":{"c":{}}}}')
        assert closed == 1011

    wire.run(go())
