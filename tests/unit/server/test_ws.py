"""The /.ws transport as ``rtdb serve`` runs it (the native protocol), driven in-process with a
stand-in transport (no sockets): ordering, hashes, framing, onDisconnect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from unit.server.wire_client import connect

from rtdb.core.hash import node_hash
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.server.auth import Authenticator
from rtdb.server.settings import Settings
from rtdb.server.ws import WsEndpoint


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[WsEndpoint]:
    settings = Settings(data_dir=tmp_path, emulator=True)
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=False)))
    yield WsEndpoint(engine, settings, Authenticator(settings))
    await engine.close()


async def test_handshake_then_ping_pong_and_keepalive(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint, admin=False)
    client.send_raw("0")
    client.send_raw('{"t":"c","d":{"t":"p","d":{}}}')
    assert await client.message() == {"t": "c", "d": {"t": "o", "d": None}}
    await client.close()


async def test_listen_sends_data_before_ok_and_nothing_when_the_hash_matches(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint)
    await client.call("p", {"p": "/users/alice", "d": {"age": 31, "name": "Alice"}})
    pushes, body = await client.call("q", {"p": "/users", "h": ""})
    assert pushes == [{"a": "d", "b": {"p": "users", "d": {"alice": {"age": 31, "name": "Alice"}}}}]
    assert body == {"s": "ok", "d": {}}
    other = await connect(endpoint)
    h = node_hash({"alice": {"age": 31, "name": "Alice"}})
    pushes, body = await other.call("q", {"p": "/users", "h": h})
    assert pushes == [] and body["s"] == "ok"
    await client.close()
    await other.close()


async def test_a_write_reaches_every_listener_before_its_ack(endpoint: WsEndpoint) -> None:
    writer = await connect(endpoint)
    reader = await connect(endpoint)
    await writer.call("q", {"p": "/k", "h": ""})
    await reader.call("q", {"p": "/k", "h": ""})
    pushes, body = await writer.call("p", {"p": "/k", "d": "v1"})
    assert pushes == [{"a": "d", "b": {"p": "k", "d": "v1"}}] and body == {"s": "ok", "d": ""}
    assert (await reader.message())["d"] == {"a": "d", "b": {"p": "k", "d": "v1"}}
    pushes, _ = await writer.call("m", {"p": "/", "d": {"k": "v2", "x/y": 1}})
    assert pushes == [{"a": "d", "b": {"p": "k", "d": "v2"}}]
    await writer.close()
    await reader.close()


async def test_transactional_put_is_datastale_on_a_hash_mismatch(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint)
    await client.call("p", {"p": "/counter", "d": 5})
    _, body = await client.call("p", {"p": "/counter", "d": 1, "h": ""})
    assert body == {"s": "datastale", "d": "Transaction hash does not match"}
    _, body = await client.call("p", {"p": "/counter", "d": 6, "h": "w28swksk9+tXf5jEdS9R5oSFAv8="})
    assert body["s"] == "ok"
    _, body = await client.call("g", {"p": "/counter", "q": {}})
    assert body == {"s": "ok", "d": 6}
    await client.close()


async def test_query_listen_gets_tagged_window_pushes(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint)
    scores = {"a": {"score": 5}, "b": {"score": 15}, "c": {"score": 25}, "d": {"score": 35}}
    await client.call("p", {"p": "/scores", "d": scores})
    q = {"sp": 10, "sin": True, "l": 2, "vf": "r", "i": "score"}
    pushes, body = await client.call("q", {"p": "/scores", "q": q, "t": 2, "h": ""})
    assert pushes == [{"a": "d", "b": {"p": "scores", "d": {"c": {"score": 25}, "d": {"score": 35}}, "t": 2}}]
    pushes, _ = await client.call("p", {"p": "/scores/e", "d": {"score": 50}})
    assert pushes == [{"a": "m", "b": {"p": "scores", "d": {"c": None, "e": {"score": 50}}, "t": 2}}]
    pushes, _ = await client.call("p", {"p": "/scores/e", "d": None})  # the window refills from storage
    assert pushes == [{"a": "d", "b": {"p": "scores", "d": {"c": {"score": 25}, "d": {"score": 35}}, "t": 2}}]
    _, body = await client.call("n", {"p": "/scores", "q": q, "t": 2})
    assert body["s"] == "ok"
    pushes, _ = await client.call("p", {"p": "/scores/f", "d": {"score": 90}})
    assert pushes == []
    await client.close()


async def test_permission_denied_answers_with_the_status(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint, admin=False)
    _, body = await client.call("q", {"p": "/secret", "h": ""})
    assert body["s"] == "permission_denied"
    _, body = await client.call("p", {"p": "/secret", "d": 1})
    assert body["s"] == "permission_denied"
    await client.close()


async def test_on_disconnect_ops_run_in_order_when_the_socket_closes(endpoint: WsEndpoint) -> None:
    leaver = await connect(endpoint)
    watcher = await connect(endpoint)
    await leaver.call("p", {"p": "/presence", "d": {"bob": True, "carol": {"n": 1}, "dave": "here"}})
    await watcher.call("q", {"p": "/presence", "h": ""})
    for action, body in [
        ("o", {"p": "/presence/alice", "d": {"online": False}}),
        ("o", {"p": "/presence/bob", "d": None}),
        ("om", {"p": "/presence/carol", "d": {"state": "away", "n": {".sv": {"increment": 1}}}}),
        ("o", {"p": "/presence/dave", "d": "gone"}),
        ("oc", {"p": "/presence/dave", "d": None}),
    ]:
        _, reply = await leaver.call(action, body)
        assert reply["s"] == "ok"
    await leaver.close()
    got = [(await watcher.message())["d"] for _ in range(3)]
    assert got == [
        {"a": "d", "b": {"p": "presence/alice", "d": {"online": False}}},
        {"a": "d", "b": {"p": "presence/bob", "d": None}},
        {"a": "m", "b": {"p": "presence/carol", "d": {"state": "away", "n": 2}}},
    ]
    await watcher.no_message()
    await watcher.close()


async def test_multi_frame_messages_both_ways(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint)
    text = json.dumps({"t": "d", "d": {"r": 99, "a": "p", "b": {"p": "/big", "d": "x" * 40000}}})
    slices = [text[i : i + 16384] for i in range(0, len(text), 16384)]
    client.send_raw(str(len(slices)))
    for part in slices:
        client.send_raw(part)
    assert (await client.message())["d"] == {"r": 99, "b": {"s": "ok", "d": ""}}
    client.request("q", {"p": "/big", "h": ""})
    count = await client.frame()
    assert count == "3"
    body = "".join([await client.frame() for _ in range(3)])
    assert json.loads(body)["d"]["b"]["d"] == "x" * 40000
    await client.close()


async def test_a_malformed_request_is_answered_and_the_connection_survives(endpoint: WsEndpoint) -> None:
    client = await connect(endpoint)
    _, body = await client.call("zz", {})
    assert body["s"] == "invalid_request"
    _, body = await client.call("p", {"p": "/a/.b", "d": 1})
    assert body["s"] == "invalid_path"
    _, body = await client.call("s", {"c": {"sdk.node.12-19-0": 1}})
    assert body == {"s": "ok", "d": ""}
    await client.close()


async def test_reconnecting_with_ls_ends_the_previous_session(endpoint: WsEndpoint) -> None:
    first = await connect(endpoint)
    watcher = await connect(endpoint)
    await watcher.call("q", {"p": "/p", "h": ""})
    await first.call("o", {"p": "/p/gone", "d": True})
    session_id = next(iter(endpoint.connections))
    second = await connect(endpoint, query=f"v=5&ls={session_id}&ns=demo")
    with pytest.raises(ConnectionError):
        while True:
            await first.frame()
    await first.close()  # the server closed it: the socket goes
    assert (await watcher.message())["d"] == {"a": "d", "b": {"p": "p/gone", "d": True}}
    await second.close()
    await watcher.close()


class _ExpiringAuth:
    """An authenticator whose user tokens expire 50 ms after the clock's now."""

    def __init__(self, clock_ms: int) -> None:
        self.clock_ms = clock_ms

    def caller(self, token: str, params: dict[str, str]) -> Any:
        from rtdb.core.auth import Caller

        return Caller(auth={"uid": token}, expires_at_ms=self.clock_ms + 50)


async def test_an_expiring_token_gets_an_auth_revoked_push(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, emulator=True)
    engine = Engine(tmp_path, access=RulesAccess(default_rules(emulator=True)), clock=lambda: 1_000_000)
    endpoint = WsEndpoint(engine, settings, _ExpiringAuth(1_000_000))  # type: ignore[arg-type]
    try:
        client = await connect(endpoint, admin=False)
        _, body = await client.call("auth", {"cred": "u1"})
        assert body == {"s": "ok", "d": {"auth": {"uid": "u1"}, "expires": 1000}}
        assert (await client.message())["d"] == {
            "a": "ac",
            "b": {"s": "expired_token", "d": "Auth token is expired."},
        }
        await client.close()
    finally:
        await engine.close()


async def test_listens_are_revoked_when_rules_or_auth_take_read_access_away(tmp_path: Path) -> None:
    from rtdb.rules import Ruleset

    settings = Settings(data_dir=tmp_path, emulator=True)
    engine = Engine(tmp_path, access=RulesAccess(Ruleset.compile('{"rules": {"pub": {".read": true}, '
                                                                  '"me": {".read": "auth != null"}}}')))
    endpoint = WsEndpoint(engine, settings, Authenticator(settings))
    tasks: list[asyncio.Task[None]] = []
    engine.access.on_change(lambda ns: tasks.append(asyncio.get_running_loop().create_task(endpoint.recheck(ns))))
    try:
        client = await connect(endpoint, admin=False)
        _, body = await client.call("q", {"p": "/pub", "h": ""})
        assert body["s"] == "ok"
        engine.access.set_default(Ruleset.compile('{"rules": {}}'))
        revoked = await client.message()
        assert revoked["d"] == {"a": "c", "b": {"p": "pub"}}

        _, body = await client.call("gauth", {"cred": "owner"})
        _, body = await client.call("q", {"p": "/me", "h": ""})
        assert body["s"] == "ok", "admin may read anything"
        _, body = await client.call("unauth", {})
        revoked = await client.message()
        assert revoked["d"] == {"a": "c", "b": {"p": "me"}}
        await client.close()
    finally:
        await engine.close()


async def test_an_unindexed_query_listen_is_answered_with_the_no_index_warning(tmp_path: Path) -> None:
    from rtdb.rules import Ruleset

    settings = Settings(data_dir=tmp_path, emulator=True)
    rules = '{"rules": {".read": true, "scores": {".indexOn": ["score"]}}}'
    engine = Engine(tmp_path, access=RulesAccess(Ruleset.compile(rules)))
    endpoint = WsEndpoint(engine, settings, Authenticator(settings))
    try:
        client = await connect(endpoint, admin=False)
        indexed = {"i": "score", "l": 2, "vf": "r"}
        _, body = await client.call("q", {"p": "/scores", "q": indexed, "t": 1, "h": ""})
        assert body == {"s": "ok", "d": {}}
        unindexed = {"i": "name", "l": 2, "vf": "r"}
        _, body = await client.call("q", {"p": "/scores", "q": unindexed, "t": 2, "h": ""})
        assert body == {"s": "ok", "d": {"w": ["no_index"]}}
        await client.close()
    finally:
        await engine.close()


async def test_on_disconnect_ops_the_rules_deny_are_refused_when_registered(tmp_path: Path) -> None:
    from rtdb.rules import Ruleset

    settings = Settings(data_dir=tmp_path, emulator=True)
    rules = ('{"rules": {"presence": {"$uid": {".write": "newData.isBoolean()"}}, '
             '"room": {".write": "newData.hasChildren([\'state\'])"}}}')
    engine = Engine(tmp_path, access=RulesAccess(Ruleset.compile(rules)))
    endpoint = WsEndpoint(engine, settings, Authenticator(settings))
    try:
        leaver = await connect(endpoint, admin=False)
        for action, body, status in [
            ("o", {"p": "/presence/ann", "d": "away"}, "permission_denied"),  # not a boolean
            ("o", {"p": "/presence/ann", "d": False}, "ok"),
            ("o", {"p": "/elsewhere", "d": 1}, "permission_denied"),
            ("om", {"p": "/room", "d": {"state": "idle"}}, "ok"),
            ("om", {"p": "/room", "d": {"other": 1}}, "permission_denied"),
            ("o", {"p": "/presence/ann", "d": {"bad key.": 1}}, "invalid_data"),
        ]:
            _, reply = await leaver.call(action, body)
            assert reply["s"] == status, (action, body, reply)
        await leaver.close()
        # only the accepted ops ran
        from rtdb.core.auth import ADMIN

        got = (await engine.read("demo", (), caller=ADMIN)).node
        assert got == {"presence": {"ann": False}, "room": {"state": "idle"}}
    finally:
        await engine.close()


async def test_restarting_a_namespace_closes_its_connections_with_1012(endpoint: WsEndpoint) -> None:
    """After a worker missed commits of a namespace for good, its clients start over."""
    a = await connect(endpoint)
    b = await connect(endpoint, query="v=5&ns=other")
    endpoint.restart("demo")
    with pytest.raises(ConnectionError, match="1012"):
        await a.frame()
    _, body = await b.call("p", {"p": "/still", "d": 1})
    assert body["s"] == "ok"
    await b.close()
