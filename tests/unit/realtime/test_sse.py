"""The SSE renderer through the hub: ``put``/``patch`` events relative to each stream (no sockets)."""

from __future__ import annotations

import json
from typing import Any

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.errors import PermissionDenied, RtdbError
from rtdb.core.query import Bound, QuerySpec
from rtdb.core.value import Node
from rtdb.realtime.broker import InProcessBroker
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.realtime.sse import SseRenderer

NS = "demo"


def _events(outbox: Outbox) -> list[list[tuple[str, Any]]]:
    """Each queued message as its events ``(kind, {"path", "data"})``; the outbox is emptied."""
    out = []
    for frames in outbox.take():
        message = []
        for text in frames:
            head, data, blank = text.split("\n", 2)
            assert head.startswith("event: ") and data.startswith("data: ") and blank == "\n"
            message.append((head[7:], json.loads(data[6:])))
        out.append(message)
    return out


def _set(seq: int, path: tuple[str, ...], old: Node, new: Node) -> ChangeSet:
    return ChangeSet(NS, seq, "set", path, (Change(path, old, new),))


def _update(seq: int, base: tuple[str, ...], *changes: tuple[tuple[str, ...], Node, Node]) -> ChangeSet:
    return ChangeSet(NS, seq, "update", base, tuple(Change(base + p, o, n) for p, o, n in changes))


def _stream(hub: Hub, path: tuple[str, ...], node: Node = None, seq: int = 0, **kw: Any) -> Outbox:
    outbox = Outbox()
    listener = hub.listen(Listener(NS, path, outbox, **kw))
    hub.activate(listener, node, seq)
    return outbox


def test_streams_get_puts_relative_to_their_location_rendered_once_per_location() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    root, users, users_too, other = (_stream(hub, p) for p in ((), ("users",), ("users",), ("other",)))
    broker.publish(_set(1, ("users", "bob"), None, {"name": "Bob"}))
    assert users._queue[0] is users_too._queue[0]  # same location: encoded once, shared
    assert _events(root) == [[("put", {"path": "/users/bob", "data": {"name": "Bob"}})]]
    assert _events(users) == [[("put", {"path": "/bob", "data": {"name": "Bob"}})]]
    assert _events(other) == []
    assert hub.metrics.payloads_encoded == 2


def test_a_write_at_or_above_a_stream_puts_its_new_value_unless_it_is_unchanged() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    alice = _stream(hub, ("users", "alice"))
    bob = _stream(hub, ("users", "bob"))
    broker.publish(_set(1, ("users",), {"alice": {"n": 1}, "bob": 2}, {"alice": {"n": 3}, "bob": 2}))
    assert _events(alice) == [[("put", {"path": "/", "data": {"n": 3}})]]
    assert _events(bob) == []


def test_an_update_of_direct_children_is_one_patch_and_of_deeper_paths_one_put_each() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    top = _stream(hub, ("u",))
    alice = _stream(hub, ("u", "alice"))
    broker.publish(_update(1, ("u", "alice"), (("age",), 30, 31), (("city",), None, "Paris")))
    assert _events(alice) == [[("patch", {"path": "/", "data": {"age": 31, "city": "Paris"}})]]
    assert _events(top) == [[("patch", {"path": "/alice", "data": {"age": 31, "city": "Paris"}})]]
    broker.publish(_update(2, ("u",), (("alice", "age"), 31, 32), (("bob",), None, 1)))
    assert _events(top) == [[("put", {"path": "/alice/age", "data": 32}), ("put", {"path": "/bob", "data": 1})]]
    assert _events(alice) == [[("put", {"path": "/age", "data": 32})]]


def test_a_pending_stream_replays_only_changes_newer_than_its_read() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    outbox = Outbox()
    stream = hub.listen(Listener(NS, ("k",), outbox))
    broker.publish(_set(5, ("k",), None, "v1"))
    broker.publish(_set(6, ("k",), "v1", "v2"))
    assert _events(outbox) == []
    hub.activate(stream, "v1", 5)
    assert _events(outbox) == [[("put", {"path": "/", "data": "v2"})]]


def test_a_query_stream_gets_its_window_changes_as_puts() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    spec = QuerySpec("child", ("score",), Bound(10), None, 2, True)
    outbox = _stream(hub, ("scores",), {"c": {"score": 25}, "d": {"score": 35}}, 3, spec=spec)
    broker.publish(_set(4, ("scores", "e"), None, {"score": 50}))
    assert _events(outbox) == [[("put", {"path": "/c", "data": None}), ("put", {"path": "/e", "data": {"score": 50}})]]
    broker.publish(_set(5, ("scores", "a", "name"), "p", "x"))  # outside the window
    assert _events(outbox) == []
    broker.publish(_set(6, ("scores",), {"d": {"score": 35}, "e": {"score": 50}}, {"z": {"score": 99}}))
    assert _events(outbox) == [[("put", {"path": "/", "data": {"z": {"score": 99}}})]]


async def test_a_window_that_cannot_be_completed_from_changes_is_re_read_and_put_whole() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    spec = QuerySpec("key", (), None, None, 2, False)

    async def refresh() -> tuple[Node, int]:
        return {"b": 2, "c": 3}, 7

    outbox = _stream(hub, ("list",), {"a": 1, "b": 2}, 6, spec=spec, refresh=refresh)
    broker.publish(_set(7, ("list", "a"), 1, None))
    await hub.settle(NS)
    assert _events(outbox) == [[("put", {"path": "/", "data": {"b": 2, "c": 3}})]]
    broker.publish(_set(8, ("list", "b"), 2, 5))
    assert _events(outbox) == [[("put", {"path": "/b", "data": 5})]]


async def test_a_query_stream_whose_window_cannot_be_re_read_is_cancelled() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, SseRenderer())
    cancelled: list[RtdbError] = []

    async def refresh() -> tuple[Node, int]:
        raise PermissionDenied("Permission denied")

    spec = QuerySpec("key", (), None, None, 1, False)
    _stream(hub, ("x",), {"a": 1}, 1, spec=spec, refresh=refresh, on_cancel=cancelled.append)
    broker.publish(_set(2, ("x", "a"), 1, None))
    await hub.settle(NS)
    assert [e.code for e in cancelled] == ["permission_denied"]
    assert hub.listener_count(NS) == 0
