"""The Python SDK against the production app: every API method, two clients, rules,
transactions, onDisconnect, reconnects, the offline queue and persistence. Most tests use
the app served from this test process (conftest's ``InProcessServer``); those that restart
the server or need other flags start a real `rtdb serve`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.sdk_helpers import Events, barrier, child_render, fresh_ns

import rtdb_sdk
from rtdb.core.hash import node_hash
from rtdb_sdk.transport import Socket, websocket_transport

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(inproc_server: Any) -> Any:
    return inproc_server


@pytest.fixture
def process_server(server_factory: Any) -> Any:
    """A real `rtdb serve --emulator`, for tests that stop and start it."""
    return server_factory("--emulator")


def url(server: Any, ns: str) -> str:
    return f"{server.url}?ns={ns}"


def rest_get(server: Any, ns: str, path: str) -> Any:
    response = httpx.get(f"{server.url}/{path}.json?ns={ns}", headers={"Authorization": "Bearer owner"}, timeout=10)
    response.raise_for_status()
    return response.json()


# -- CRUD and snapshots ------------------------------------------------------------------------


async def test_set_get_update_remove_and_snapshot_api(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        ref = db.reference("rooms/lobby")
        assert ref.key == "lobby" and ref.parent is not None and ref.parent.key == "rooms"
        assert ref.root.key is None and ref.child("a/b").path == ("rooms", "lobby", "a", "b")
        await ref.set({"topic": "hello", "members": {"ada": True, "bob": True}, "list": ["x", "y"]})
        snap = await ref.get()
        assert snap.key == "lobby" and snap.exists()
        assert snap.val() == {"topic": "hello", "members": {"ada": True, "bob": True}, "list": ["x", "y"]}
        assert snap.child("members/ada").val() is True and snap.has_child("topic")
        assert [c.key for c in snap.child("members").children()] == ["ada", "bob"]
        assert len(snap) == 3 and snap.has_children()
        await ref.update({"topic": "changed", "members/bob": None, "members/cy": True})
        assert (await ref.child("members").get()).val() == {"ada": True, "cy": True}
        assert (await ref.child("topic").get()).val() == "changed"
        await ref.child("list").remove()
        assert (await ref.get()).val() == {"topic": "changed", "members": {"ada": True, "cy": True}}
        await ref.set({"n": {".value": 1, ".priority": 5}})
        snap = await ref.child("n").get()
        assert snap.priority == 5 and snap.export_val() == {".value": 1, ".priority": 5}
        await ref.remove()
        assert not (await ref.get()).exists()


async def test_push_returns_a_reference_with_a_push_id(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        messages = db.reference("messages")
        first = await messages.push({"text": "one"})
        second = messages.push({"text": "two"})
        assert isinstance(second.key, str) and len(second.key) == 20
        await second
        assert isinstance(first, rtdb_sdk.Reference) and len(first.key or "") == 20
        assert first.key < second.key  # type: ignore[operator]
        snap = await messages.get()
        assert [c.val()["text"] for c in snap.children()] == ["one", "two"]
        empty = messages.push()
        assert not (await empty.get()).exists()


async def test_local_writes_fire_events_before_the_server_answers(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        ref = db.reference("counter")
        await ref.set(1)
        values = Events()
        ref.on_value(values)
        await values.wait(1)
        assert values.items == [1]
        pending = ref.set(2)
        assert values.items == [1, 2]  # raised synchronously, before any answer
        await pending
        await barrier(db)
        await values.wait(2)  # the echo and the ack raise nothing more


async def test_a_listener_on_mirrored_data_fires_at_once(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        parent = db.reference("a")
        await parent.set({"b": {"c": 1}})
        outer = Events()
        parent.on_value(outer)
        await outer.wait(1)
        inner = Events()
        parent.child("b/c").on_value(inner)
        assert inner.items == [1]  # served from the mirror, no round trip
        snap = await parent.child("b").get()
        assert snap.val() == {"c": 1}


async def test_child_events_with_previous_keys(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        ref = db.reference("items")
        await ref.set({"a": 1, "b": 2})
        events = Events(lambda item: item)
        for kind in ("added", "changed", "moved"):
            getattr(ref, f"on_child_{kind}")(_tagged(events, kind))
        ref.on_child_removed(lambda snap: events(("removed", snap.key, snap.val(), None)))
        await events.wait(2)
        assert events.items == [("added", "a", 1, None), ("added", "b", 2, "a")]
        await ref.child("c").set(3)
        await ref.child("a").set(10)
        await ref.child("b").remove()
        await ref.child("a").set({".value": 10, ".priority": 1})
        await events.wait(7)
        assert events.items[2:] == [
            ("added", "c", 3, "b"),
            ("changed", "a", 10, None),
            ("removed", "b", 2, None),
            ("moved", "a", 10, "c"),  # a priority now sorts after the children without one
            ("changed", "a", 10, "c"),
        ]


def _tagged(events: Events, kind: str) -> Any:
    return lambda snap, prev: events((kind, snap.key, snap.val(), prev))


async def test_values_is_an_async_iterator(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        ref = db.reference("v")
        await ref.set(0)
        seen = []
        async with ref.values() as stream:
            async for snap in stream:
                seen.append(snap.val())
                if snap.val() < 3:
                    ref.set(snap.val() + 1)
                else:
                    break
        assert seen == [0, 1, 2, 3]


async def test_listener_cancel_stops_events(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        ref = db.reference("x")
        events = Events()
        listener = ref.on_value(events)
        await events.wait(1)
        listener.cancel()
        assert not listener.active
        await ref.set(5)
        await barrier(db)
        assert events.items == [None]


# -- queries -------------------------------------------------------------------------------------

SCORES = {"a": {"score": 5}, "b": {"score": 15}, "c": {"score": 25}, "d": {"score": 35}, "e": {"score": 50}}


async def test_every_query_method(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        scores = db.reference("scores")
        await scores.set(SCORES)
        by_score = scores.order_by_child("score")

        async def keys(q: rtdb_sdk.Query) -> list[str | None]:
            return [c.key for c in (await q.get()).children()]

        assert await keys(by_score.start_at(10).limit_to_last(2)) == ["d", "e"]
        assert await keys(by_score.start_after(15).end_before(50)) == ["c", "d"]
        assert await keys(by_score.end_at(25)) == ["a", "b", "c"]
        assert await keys(by_score.equal_to(35)) == ["d"]
        assert await keys(by_score.limit_to_first(2)) == ["a", "b"]
        assert await keys(scores.order_by_key().start_at("b").end_at("d")) == ["b", "c", "d"]
        assert await keys(scores.order_by_key().start_after("c")) == ["d", "e"]
        values = db.reference("values")
        await values.set({"x": 3, "y": 1, "z": 2, "w": 3})
        assert await keys(values.order_by_value()) == ["y", "z", "w", "x"]
        assert await keys(values.order_by_value().equal_to(3)) == ["w", "x"]
        assert await keys(values.order_by_value().start_at(3, "x")) == ["x"]
        prios = db.reference("prios")
        await prios.set({"p": {".value": 1, ".priority": 2}, "q": {".value": 2, ".priority": 1}})
        assert await keys(prios.order_by_priority()) == ["q", "p"]
        assert await keys(prios.order_by_priority().limit_to_first(1)) == ["q"]
        # the same queries served from the mirror, once a listener holds the data
        mirror = Events()
        scores.on_value(mirror)
        await mirror.wait(1)
        assert await keys(by_score.start_at(10).limit_to_last(2)) == ["d", "e"]
        with pytest.raises(rtdb_sdk.InvalidArgument):
            by_score.order_by_key()
        with pytest.raises(rtdb_sdk.InvalidArgument):
            by_score.limit_to_first(1).limit_to_last(1)
        with pytest.raises(rtdb_sdk.InvalidArgument):
            scores.order_by_key().start_at(1)


async def test_a_query_listener_follows_its_window(server: Any) -> None:
    ns = fresh_ns()
    async with rtdb_sdk.connect(url(server, ns)) as db, rtdb_sdk.connect(url(server, ns)) as other:
        await db.reference("scores").set(SCORES)
        top = db.reference("scores").order_by_child("score").limit_to_last(2)
        events = Events(lambda item: item)
        top.on_child_added(_tagged(events, "added"))
        top.on_child_removed(lambda snap: events(("removed", snap.key, snap.val(), None)))
        await events.wait(2)
        assert events.items == [("added", "d", {"score": 35}, None), ("added", "e", {"score": 50}, "d")]
        await other.reference("scores/f").set({"score": 40})
        await events.wait(4)
        assert events.items[2:] == [("removed", "d", {"score": 35}, None), ("added", "f", {"score": 40}, None)]
        await other.reference("scores/a/score").set(1)
        await barrier(db)
        assert len(events.items) == 4


# -- two clients ---------------------------------------------------------------------------------


async def test_two_clients_see_each_others_writes_in_order(server: Any) -> None:
    ns = fresh_ns()
    async with (
        rtdb_sdk.connect(url(server, ns)) as alice,
        rtdb_sdk.connect(url(server, ns)) as bob,
        rtdb_sdk.connect(url(server, ns)) as observer,
    ):
        seen: dict[str, Events] = {}
        for name, db in (("alice", alice), ("bob", bob), ("observer", observer)):
            seen[name] = Events(child_render("added"))
            db.reference("chat").on_child_added(seen[name])
        await asyncio.gather(barrier(alice), barrier(bob), barrier(observer))
        writes = []
        for i in range(20):
            writer, name = (alice, "alice") if i % 2 == 0 else (bob, "bob")
            writes.append(writer.reference("chat").child(f"m{i:02d}").set({"n": i, "by": name}))
        await asyncio.gather(*writes)
        for events in seen.values():
            await events.wait(20)

        def by(events: Events, author: str) -> list[int]:
            return [v["n"] for _, _, v, _ in events.items if v["by"] == author]

        # Each client sees the other's writes in the order they were made (its own at once) ...
        assert by(seen["alice"], "bob") == by(seen["observer"], "bob") == list(range(1, 20, 2))
        assert by(seen["bob"], "alice") == by(seen["observer"], "alice") == list(range(0, 20, 2))
        # ... and everyone ends with the same data.
        values = [(await db.reference("chat").get()).val() for db in (alice, bob, observer)]
        assert values[0] == values[1] == values[2] and len(values[0]) == 20


# -- transactions ----------------------------------------------------------------------------------


async def test_transaction_commits_reruns_and_aborts(server: Any) -> None:
    ns = fresh_ns()
    async with rtdb_sdk.connect(url(server, ns)) as db, rtdb_sdk.connect(url(server, ns)) as other:
        await other.reference("counter").set(5)
        calls: list[Any] = []

        def bump(current: Any) -> Any:
            calls.append(current)
            return (current or 0) + 1

        result = await db.reference("counter").transaction(bump)
        assert result.committed and result.snapshot.val() == 6
        assert calls[-1] == 5
        aborted = await db.reference("counter").transaction(lambda cur: rtdb_sdk.ABORT)
        assert not aborted.committed and aborted.snapshot.val() == 6
        await db.reference("obj").set({"n": 1, "s": "x", ".priority": 3})
        result = await db.reference("obj").transaction(lambda cur: {**cur, "n": cur["n"] + 1})
        assert result.snapshot.export_val() == {"n": 2, "s": "x", ".priority": 3}
        deleted = await db.reference("obj").transaction(lambda cur: None)
        assert deleted.committed and not deleted.snapshot.exists()
        assert rest_get(server, ns, "counter") == 6


async def test_concurrent_transactions_from_several_clients_lose_no_increment(server: Any) -> None:
    ns = fresh_ns()
    clients = [rtdb_sdk.connect(url(server, ns)) for _ in range(4)]
    for c in clients:
        await c.start()
    try:

        async def worker(db: rtdb_sdk.Database) -> None:
            for _ in range(10):
                result = await db.reference("hits").transaction(lambda cur: (cur or 0) + 1)
                assert result.committed

        await asyncio.gather(*(worker(c) for c in clients))
        assert rest_get(server, ns, "hits") == 40
    finally:
        for c in clients:
            await c.close()


# -- server values, .info ------------------------------------------------------------------------------


async def test_server_timestamp_increment_and_info(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        connected = Events()
        db.reference(".info/connected").on_value(connected)
        await connected.wait_until(lambda items: items[-1:] == [True])
        assert isinstance(db.server_time_offset, int) and abs(db.server_time_offset) < 60_000
        offset = await db.reference(".info/serverTimeOffset").get()
        assert offset.val() == db.server_time_offset
        ref = db.reference("sv")
        local = Events()
        ref.on_value(local)
        await local.wait(1)
        await ref.set({"at": rtdb_sdk.SERVER_TIMESTAMP, "n": rtdb_sdk.increment(1)})
        guess = local.items[1]
        assert guess["n"] == 1 and isinstance(guess["at"], int)
        await ref.update({"n": rtdb_sdk.increment(2.5)})
        await barrier(db)
        snap = await ref.get()
        assert snap.val()["n"] == 3.5 and abs(snap.val()["at"] - guess["at"]) < 5_000
        await db.go_offline()
        await connected.wait_until(lambda items: items[-1:] == [False])
        await db.go_online()
        await connected.wait_until(lambda items: items[-1:] == [True])
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference(".info/connected").set(True)


# -- onDisconnect -------------------------------------------------------------------------------------------


async def test_on_disconnect_set_update_remove_and_cancel(server: Any) -> None:
    ns = fresh_ns()
    async with rtdb_sdk.connect(url(server, ns)) as watcher:
        presence = Events()
        watcher.reference("presence").on_value(presence)
        await presence.wait(1)
        db = await rtdb_sdk.connect(url(server, ns))
        await db.reference("presence").set({"alice": "on", "bob": "on", "carol": {"state": "on"}, "dave": "on"})
        await db.reference("presence/alice").on_disconnect().set({"at": rtdb_sdk.SERVER_TIMESTAMP, "online": False})
        await db.reference("presence/bob").on_disconnect().remove()
        await db.reference("presence/carol").on_disconnect().update({"state": "away", "n": rtdb_sdk.increment(1)})
        await db.reference("presence/dave").on_disconnect().set("gone")
        await db.reference("presence/dave").on_disconnect().cancel()
        await db.close()
        final = await presence.wait_until(lambda items: (items[-1] or {}).get("carol", {}).get("state") == "away")
        value = final[-1]
        assert value["alice"]["online"] is False and isinstance(value["alice"]["at"], int)
        assert value["carol"] == {"state": "away", "n": 1}
        assert value["dave"] == "on"


async def test_on_disconnect_fires_when_the_client_process_is_killed(server: Any, tmp_path: Path) -> None:
    ns = fresh_ns()
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        import rtdb_sdk
        db = rtdb_sdk.connect_sync({url(server, ns)!r})
        db.reference("status/worker").set("online")
        db.reference("status/worker").on_disconnect().set("offline")
        print("ready", flush=True)
        time.sleep(600)
    """)
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.strip() == b"ready"
        async with rtdb_sdk.connect(url(server, ns)) as db:
            status = Events()
            db.reference("status/worker").on_value(status)
            await status.wait(1)
            assert status.items == ["online"]
            proc.send_signal(signal.SIGKILL)
            await status.wait(2)
            assert status.items == ["online", "offline"]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# -- rules --------------------------------------------------------------------------------------------


RULES = """{
  // rules cascade: a grant above cannot be taken back below, so grant per branch
  "rules": {
    "open": {".read": true, ".write": true},
    "_barrier": {".write": true},
    "locked": {".read": true, ".write": false},
    "secret": {".read": false, ".write": true}
  }
}"""


async def test_a_denied_write_is_reverted_locally_and_raises(server_factory: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules))
    ns = fresh_ns()
    async with rtdb_sdk.connect(url(server, ns)) as db:
        locked = db.reference("locked")
        events = Events()
        locked.on_value(events)
        await events.wait(1)
        pending = db.reference("locked/x").set(1)
        assert events.items == [None, {"x": 1}]  # optimistic
        with pytest.raises(rtdb_sdk.PermissionDenied) as info:
            await pending
        assert info.value.code == "PERMISSION_DENIED" and info.value.message.startswith("PERMISSION_DENIED")
        await events.wait(3)
        assert events.items[2] is None  # reverted to the server's state
        await db.reference("open/x").set(1)
        cancelled: list[Exception] = []
        secret = Events()
        db.reference("secret").on_value(secret, on_cancel=cancelled.append)
        with pytest.raises(rtdb_sdk.PermissionDenied):
            await db.reference("secret/x").get()
        await barrier(db)
        assert len(cancelled) == 1 and isinstance(cancelled[0], rtdb_sdk.PermissionDenied)
        assert (
            cancelled[0].message
            == "permission_denied at /secret: Client doesn't have permission to access the desired data."
        )
        assert secret.items == []
        with pytest.raises(rtdb_sdk.PermissionDenied):
            await db.reference("locked/n").transaction(lambda cur: 1)
        # onDisconnect writes are checked when registered (and again when they run)
        with pytest.raises(rtdb_sdk.PermissionDenied):
            await locked.child("gone").on_disconnect().set(True)
        await db.reference("open/bye").on_disconnect().set(True)
    async with rtdb_sdk.connect(url(server, ns)) as db:
        # the server runs onDisconnect writes when it sees the close: wait for it, do not race it
        bye = Events()
        db.reference("open/bye").on_value(bye)
        await bye.wait_until(lambda items: items[-1:] == [True])
        assert (await db.reference("locked").get()).val() is None


# -- connection loss -----------------------------------------------------------------------------------


async def test_reconnect_after_server_restart_delivers_pending_writes_exactly_once(process_server: Any) -> None:
    server = process_server
    ns = fresh_ns()
    db = await rtdb_sdk.connect(url(server, ns), min_reconnect_delay=0.2)
    try:
        connected = Events()
        db.reference(".info/connected").on_value(connected)
        mirror = Events(child_render("added"))
        db.reference("log").on_child_added(mirror)
        await db.reference("log/before").set(0)
        await mirror.wait(1)
        server.kill()
        await connected.wait_until(lambda items: items[-1] is False)
        writes = [db.reference("log").push(i) for i in range(25)]
        await mirror.wait(26)  # applied locally at once
        server.start()
        await asyncio.wait_for(asyncio.gather(*writes), 30)
        await connected.wait_until(lambda items: items[-1] is True)
        assert len(rest_get(server, ns, "log")) == 26
        async with rtdb_sdk.connect(url(server, ns)) as other:
            others = Events(child_render("added"))
            other.reference("log").on_child_added(others)
            await others.wait(26)
        await barrier(db)
        assert len(mirror.items) == 26
    finally:
        await db.close()


async def test_writes_made_offline_queue_and_go_out_in_order(server: Any) -> None:
    ns = fresh_ns()
    async with rtdb_sdk.connect(url(server, ns)) as db, rtdb_sdk.connect(url(server, ns)) as other:
        remote = Events()
        other.reference("q").on_value(remote)
        await remote.wait(1)
        await db.go_offline()
        writes = [db.reference("q").set(i) for i in range(1, 6)]
        writes.append(db.reference("q").update({}))
        local = await db.reference("q").get()
        assert local.val() == 5  # offline, a pending write that covers the path answers get()
        await barrier(other)  # nothing was sent while offline
        assert remote.items == [None]
        await db.go_online()
        await asyncio.wait_for(asyncio.gather(*writes), 20)
        await remote.wait_until(lambda items: items[-1] == 5)
        assert remote.items == [None, 1, 2, 3, 4, 5] or remote.items[-1] == 5
        with pytest.raises(rtdb_sdk.Offline):
            await db.go_offline()
            await db.reference("never/listened").get()
        await db.go_online()


async def test_persistence_across_a_client_restart(process_server: Any, tmp_path: Path) -> None:
    server = process_server
    ns = fresh_ns()
    cache = str(tmp_path / "cache.db")
    async with rtdb_sdk.connect(url(server, ns), cache_path=cache) as db:
        await db.reference("notes").set({"n1": "first"})
        events = Events()
        db.reference("notes").on_value(events)
        await events.wait(1)
    server.stop()
    # Server down: the cached data shows at once, and writes queue (persisted, unacknowledged).
    async with rtdb_sdk.connect(url(server, ns), cache_path=cache) as db:
        events = Events()
        db.reference("notes").on_value(events)
        assert events.items == [{"n1": "first"}]
        db.reference("notes/n2").set("offline write")
        db.reference("notes").update({"n3": "another"})
        assert events.items[-1] == {"n1": "first", "n2": "offline write", "n3": "another"}
    server.start()
    async with rtdb_sdk.connect(url(server, ns), cache_path=cache) as db:
        events = Events()
        db.reference("notes").on_value(events)
        assert events.items[0] == {"n1": "first", "n2": "offline write", "n3": "another"}
        await barrier(db)
        await events.wait_until(lambda items: rest_get(server, ns, "notes") == items[-1])
    assert rest_get(server, ns, "notes") == {"n1": "first", "n2": "offline write", "n3": "another"}


# -- arguments and the blocking facade -----------------------------------------------------------------


async def test_invalid_arguments_raise_before_sending(server: Any) -> None:
    async with rtdb_sdk.connect(url(server, fresh_ns())) as db:
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference("a/b.c")
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference("a").set({"bad.key": 1})
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference("a").update({"x": 1, "x/y": 2})
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference("a").set(float("nan"))
        with pytest.raises(rtdb_sdk.InvalidArgument):
            db.reference("a").limit_to_first(0)


def test_blocking_facade(server: Any) -> None:
    ns = fresh_ns()
    with rtdb_sdk.connect_sync(url(server, ns)) as db:
        ref = db.reference("sync")
        ref.set({"a": 1})
        assert ref.get().val() == {"a": 1}
        ref.update({"b": 2})
        pushed = ref.child("list").push("x")
        assert pushed.get().val() == "x"
        result = ref.child("n").transaction(lambda cur: (cur or 0) + 1)
        assert result.committed and result.snapshot.val() == 1
        q = ref.order_by_key().start_at("b").limit_to_first(1)
        assert [c.key for c in q.get().children()] == ["b"]
        seen: list[Any] = []
        listener = ref.child("a").on_value(lambda snap: seen.append(snap.val()))
        ref.child("a").set(5)
        for snap in ref.child("a").values(timeout=10):
            if snap.val() == 5:
                break
        assert seen[-1] == 5
        listener.cancel()
        ref.child("gone").on_disconnect().set(True)
        ref.child("gone").on_disconnect().cancel()
        db.go_offline()
        db.go_online()
        db.wait_connected(10)
        assert db.connected
        ref.remove()
        assert not ref.get().exists()


# -- the official JS SDK -------------------------------------------------------------------------------

NODE_MODULES = Path(__file__).resolve().parents[1] / "node" / "node_modules"
JS_PEER = """
const { initializeApp } = require('firebase/app');
const { getDatabase, connectDatabaseEmulator, ref, set, onChildAdded, goOffline } = require('firebase/database');
const [port, ns, n] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4])];
const app = initializeApp({ projectId: 'demo', databaseURL: `http://127.0.0.1:${port}?ns=${ns}` });
const db = getDatabase(app);
connectDatabaseEmulator(db, '127.0.0.1', port);
const seen = [];
onChildAdded(ref(db, 'interop/from_python'), async (snap) => {
  seen.push(snap.val());
  if (seen.length === n) {
    console.log('got ' + JSON.stringify(seen));
    for (let i = 0; i < n; i++) await set(ref(db, `interop/from_js/k${String(i).padStart(2, '0')}`), { i, by: 'js' });
    console.log('wrote');
    goOffline(db);
    process.exit(0);
  }
});
console.log('ready');
setTimeout(() => { console.log('timeout ' + JSON.stringify(seen)); process.exit(1); }, 20000);
"""


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "firebase").is_dir(), reason="node + firebase@12 not installed"
)
async def test_python_and_the_official_js_sdk_see_each_others_writes(server: Any, tmp_path: Path) -> None:
    ns = fresh_ns("interop")
    script = tmp_path / "peer.cjs"
    script.write_text(JS_PEER)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NODE_PATH"] = str(NODE_MODULES)
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node, str(script), str(server.port), ns, "10", stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).strip() == b"ready"
        async with rtdb_sdk.connect(url(server, ns)) as db:
            from_js = Events(child_render("added"))
            db.reference("interop/from_js").on_child_added(from_js)
            for i in range(10):
                db.reference(f"interop/from_python/p{i:02d}").set({"i": i, "by": "python"})
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line.startswith("got ") and [v["i"] for v in json.loads(line[4:])] == list(range(10))
            await from_js.wait(10, timeout=20)
            assert [v for _, _, v, _ in from_js.items] == [{"i": i, "by": "js"} for i in range(10)]
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_listens_are_resent_with_hashes_so_unchanged_data_is_not_resent(server: Any) -> None:
    sent: list[str] = []
    received: list[str] = []

    class Recording:
        def __init__(self, inner: Socket) -> None:
            self._inner = inner

        async def send(self, frame: str) -> None:
            sent.append(frame)
            await self._inner.send(frame)

        async def recv(self) -> str:
            frame = await self._inner.recv()
            received.append(frame)
            return frame

        async def close(self) -> None:
            await self._inner.close()

    async def transport(u: str, headers: Mapping[str, str]) -> Socket:
        return Recording(await websocket_transport(u, headers))

    async with rtdb_sdk.connect(url(server, fresh_ns()), transport=transport, min_reconnect_delay=0.1) as db:
        data = {"a": 1, "b": {"c": True}}
        await db.reference("watched").set(data)
        events = Events()
        db.reference("watched").on_value(events)
        await events.wait(1)
        await db.go_offline()
        sent.clear()
        received.clear()
        await db.go_online()
        await db.wait_connected()
        await barrier(db)
        listens = [json.loads(f)["d"]["b"] for f in sent if '"a":"q"' in f]
        assert listens == [{"p": "/watched", "h": node_hash(data)}]
        assert not any('"a":"d"' in f and "watched" in f for f in received)  # hash matched: no data resent
        assert events.items == [data]


# -- tokens that expire --------------------------------------------------------------------------

TOKEN_SECRET = "sdk-token-secret-" + "z" * 32
TOKEN_RULES = """{
  "rules": {
    "private": {"$uid": {".read": "auth != null && auth.uid === $uid", ".write": "auth != null && auth.uid === $uid"}},
    "_barrier": {".write": true}
  }
}"""


class Tokens:
    """A token provider that issues short-lived ID tokens and records how it was asked."""

    def __init__(self, uid: str, lifetime: int, *, first_expired: bool = False) -> None:
        self.uid = uid
        self.lifetime = lifetime
        self.first_expired = first_expired
        self.calls: list[bool] = []
        self.expiries: list[int] = []  # each issued token's exp

    async def __call__(self, force_refresh: bool) -> str:
        import time

        import jwt

        self.calls.append(force_refresh)
        now = int(time.time())
        exp = now - 10 if self.first_expired and len(self.calls) == 1 else now + self.lifetime
        self.expiries.append(exp)
        claims = {"sub": self.uid, "user_id": self.uid, "iat": now - 20, "exp": exp}
        return jwt.encode(claims, TOKEN_SECRET, algorithm="HS256")


@pytest.fixture
def token_server(server_factory: Any, tmp_path: Path) -> Any:
    rules = tmp_path / "token-rules.json"
    rules.write_text(TOKEN_RULES)
    return server_factory("--rules", str(rules), "--secret", TOKEN_SECRET)


async def test_a_token_provider_keeps_the_connection_authenticated_past_each_tokens_expiry(token_server: Any) -> None:
    import time

    # The SDK's clock runs 2.5 s ahead of the server's, so it sees at most 0.5 s left on a
    # 3 s token and refreshes at its floor of 1 s, >= 1 s before the server expires the token.
    tokens = Tokens("ann", lifetime=3)
    ahead = lambda: time.time() + 2.5  # noqa: E731
    async with rtdb_sdk.Database(url(token_server, fresh_ns()), token_provider=tokens, clock=ahead) as db:
        mine = db.reference("private/ann")
        events = Events()
        cancelled: list[Exception] = []
        mine.on_value(events, on_cancel=cancelled.append)
        await mine.set(1)
        deadline = time.monotonic() + 30
        while True not in tokens.calls[1:]:  # the provider is asked ahead of the expiry
            assert time.monotonic() < deadline, tokens.calls
            await asyncio.sleep(0.02)
        assert time.time() < tokens.expiries[0]  # ...before the server would refuse the first token
        await asyncio.sleep(tokens.expiries[0] + 0.2 - time.time())  # the server's clock passes the first exp
        await mine.set(2)  # still authenticated: no permission error
        await events.wait_until(lambda items: items[-1] == 2)
        assert cancelled == [] and db._repo.conn.connect_count == 1  # no revoked listen, no reconnect
        assert tokens.calls[0] is False and True in tokens.calls[1:]


async def test_a_refused_token_is_replaced_by_a_fresh_one_on_reconnect(token_server: Any) -> None:
    tokens = Tokens("bob", lifetime=600, first_expired=True)
    async with rtdb_sdk.connect(url(token_server, fresh_ns()), token_provider=tokens, min_reconnect_delay=0.1) as db:
        await db.reference("private/bob").set("ok")
        assert (await db.reference("private/bob").get()).val() == "ok"
        assert tokens.calls[:2] == [False, True]


async def test_refresh_auth_applies_a_sign_out_and_a_sign_in_at_once(token_server: Any) -> None:
    user: list[str | None] = ["cy"]
    issue = Tokens("cy", lifetime=600)

    async def provider(force_refresh: bool) -> str | None:
        return await issue(force_refresh) if user[0] else None

    async with rtdb_sdk.connect(url(token_server, fresh_ns()), token_provider=provider) as db:
        await db.reference("private/cy").set(1)
        user[0] = None
        await db.refresh_auth()  # signed out: the same connection is now unauthenticated
        with pytest.raises(rtdb_sdk.PermissionDenied):
            await db.reference("private/cy").set(2)
        user[0] = "cy"
        await db.refresh_auth()
        await db.reference("private/cy").set(3)
        assert db._repo.conn.connect_count == 1
