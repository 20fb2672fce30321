"""Fan-out from committed ChangeSets to listeners' outboxes (no sockets)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import pytest

from rtdb.core.changes import Change, ChangeSet
from rtdb.core.errors import PermissionDenied, RtdbError
from rtdb.core.path import Path
from rtdb.core.query import Bound, QuerySpec
from rtdb.core.value import Node
from rtdb.realtime.broker import InProcessBroker, SeqOrderer
from rtdb.realtime.hub import Hub, Listener
from rtdb.realtime.outbox import Outbox
from rtdb.realtime.wire import WireRenderer

NS = "demo"


def _messages(outbox: Outbox) -> list[dict[str, Any]]:
    out = []
    for frames in list(outbox._queue):
        text = frames[0] if len(frames) == 1 else "".join(frames[1:])
        out.append(json.loads(text)["d"])
    outbox._queue.clear()
    return out


def _set(seq: int, path: tuple[str, ...], old: Node, new: Node) -> ChangeSet:
    return ChangeSet(NS, seq, "set", path, (Change(path, old, new),))


def _update(seq: int, base: tuple[str, ...], *changes: tuple[tuple[str, ...], Node, Node]) -> ChangeSet:
    return ChangeSet(NS, seq, "update", base, tuple(Change(base + p, o, n) for p, o, n in changes))


def _active(hub: Hub, path: tuple[str, ...], node: Node = None, seq: int = 0, **kw: Any) -> tuple[Listener, Outbox]:
    outbox = Outbox()
    listener = hub.listen(Listener(NS, path, outbox, **kw))
    hub.activate(listener, node, seq)
    return listener, outbox


def test_listeners_at_ancestors_get_one_shared_overwrite_at_the_written_path() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    _, root = _active(hub, ())
    _, users = _active(hub, ("users",))
    _, other = _active(hub, ("other",))
    broker.publish(_set(1, ("users", "bob"), None, {"age": 5, "name": "Bob"}))
    assert root._queue[0] is users._queue[0]  # encoded once, shared
    assert _messages(users) == [{"a": "d", "b": {"p": "users/bob", "d": {"age": 5, "name": "Bob"}}}]
    assert _messages(other) == []
    assert hub.metrics.payloads_encoded == 1


def test_listeners_below_a_write_get_their_own_part_only() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    _, alice = _active(hub, ("users", "alice", "name"))
    _, bob = _active(hub, ("users", "bob"))
    broker.publish(_set(1, ("users",), {"alice": {"name": "A"}, "bob": 1}, {"alice": {"name": "B"}, "bob": 1}))
    assert _messages(alice) == [{"a": "d", "b": {"p": "users/alice/name", "d": "B"}}]
    assert _messages(bob) == []


def test_multi_path_update_is_a_merge_at_the_base_and_split_below_it() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    _, top = _active(hub, ("u",))
    _, alice = _active(hub, ("u", "alice"))
    _, city = _active(hub, ("u", "alice", "address", "city"))
    broker.publish(
        _update(1, ("u", "alice"), (("age",), 30, 31), (("address", "city"), None, "Paris"))
    )
    assert _messages(top) == [{"a": "m", "b": {"p": "u/alice", "d": {"age": 31, "address/city": "Paris"}}}]
    assert _messages(alice) == [{"a": "m", "b": {"p": "u/alice", "d": {"age": 31, "address/city": "Paris"}}}]
    assert _messages(city) == [{"a": "d", "b": {"p": "u/alice/address/city", "d": "Paris"}}]
    broker.publish(_update(2, ("u",), (("alice", "age"), 31, 32), (("bob", "age"), None, 1)))
    assert _messages(alice) == [{"a": "m", "b": {"p": "u/alice", "d": {"age": 32}}}]
    assert _messages(city) == []


class _Recorder:
    """A renderer that names what it was asked for."""

    def __init__(self, shares_base: bool) -> None:
        self.shares_base = shares_base
        self.asked: list[tuple[Path, int]] = []

    def render_changes(
        self, at: Path, changeset: ChangeSet, changes: Sequence[Change], covers_base: bool
    ) -> tuple[str, ...] | None:
        self.asked.append((at, len(changes)))
        return ("/".join(at) if not (covers_base and self.shares_base) else "base",)

    def render_window(self, at: Path, node: Node, tag: int | None) -> tuple[str, ...]:
        return ("window",)

    def render_merge(self, at: Path, entries: dict[str, Node], tag: int | None) -> tuple[str, ...]:
        return ("merge",)


@pytest.mark.parametrize("shares_base", [True, False])
def test_the_renderer_is_asked_once_per_distinct_message(shares_base: bool) -> None:
    broker = InProcessBroker()
    renderer = _Recorder(shares_base)
    hub = Hub(broker, renderer)
    root, top, top_too, deep, other = (_active(hub, p)[1] for p in ((), ("u",), ("u",), ("u", "a", "x"), ("v",)))
    broker.publish(_update(1, ("u",), (("a", "x"), 1, 2), (("b",), None, 3)))
    if shares_base:
        assert renderer.asked == [((), 2), (("u", "a", "x"), 1)]
        assert root._queue == top._queue == top_too._queue == [("base",)]
    else:
        assert renderer.asked == [((), 2), (("u",), 2), (("u", "a", "x"), 1)]
        assert root._queue == [("",)] and top._queue == top_too._queue == [("u",)]
    assert deep._queue == [("u/a/x",)] and other._queue == []
    assert hub.metrics.payloads_encoded == len(renderer.asked)


def test_a_pending_listener_replays_only_changes_newer_than_its_read() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    outbox = Outbox()
    listener = hub.listen(Listener(NS, ("k",), outbox))
    broker.publish(_set(5, ("k",), None, "v1"))
    broker.publish(_set(6, ("k",), "v1", "v2"))
    assert _messages(outbox) == []
    outbox.send(('{"t":"d","d":{"initial":"v1"}}',))  # what the transport sends for a read at seq 5
    hub.activate(listener, "v1", 5)
    assert _messages(outbox) == [{"initial": "v1"}, {"a": "d", "b": {"p": "k", "d": "v2"}}]
    broker.publish(_set(6, ("k",), "v1", "v2"))  # duplicate delivery is ignored
    assert _messages(outbox) == []


def test_query_listener_gets_tagged_window_changes_of_the_captured_session() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    spec = QuerySpec("child", ("score",), Bound(10), None, 2, True)
    window = {"c": {"score": 25}, "d": {"score": 35}}
    _, outbox = _active(hub, ("scores",), window, 3, spec=spec, tag=2)
    broker.publish(_set(4, ("scores", "e"), None, {"score": 50}))
    assert _messages(outbox) == [{"a": "m", "b": {"p": "scores", "d": {"c": None, "e": {"score": 50}}, "t": 2}}]
    broker.publish(_set(5, ("scores", "a", "name"), "p", "x"))  # outside the window, index untouched
    assert _messages(outbox) == []
    broker.publish(_set(6, ("scores", "e", "name"), None, "y"))
    assert _messages(outbox) == [{"a": "m", "b": {"p": "scores", "d": {"e/name": "y"}, "t": 2}}]


async def test_a_window_that_cannot_be_completed_from_changes_is_re_read() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    spec = QuerySpec("key", (), None, None, 2, False)
    reads: list[int] = []

    async def refresh() -> tuple[Node, int]:
        reads.append(1)
        return {"b": 2, "c": 3}, 7

    _, outbox = _active(hub, ("list",), {"a": 1, "b": 2}, 6, spec=spec, tag=9, refresh=refresh)
    broker.publish(_set(7, ("list", "a"), 1, None))
    broker.publish(_set(7, ("list", "a"), 1, None))
    await hub.settle(NS)
    assert reads == [1]
    assert _messages(outbox) == [{"a": "d", "b": {"p": "list", "d": {"b": 2, "c": 3}, "t": 9}}]
    assert hub.metrics.window_refreshes == 1


async def test_a_refresh_that_is_denied_cancels_the_listen() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    cancelled: list[RtdbError] = []

    async def refresh() -> tuple[Node, int]:
        raise PermissionDenied("Permission denied")

    spec = QuerySpec("key", (), None, None, 1, False)
    _active(hub, ("x",), {"a": 1}, 1, spec=spec, tag=1, refresh=refresh, on_cancel=cancelled.append)
    broker.publish(_set(2, ("x", "a"), 1, None))
    await hub.settle(NS)
    assert [e.code for e in cancelled] == ["permission_denied"]
    assert hub.listener_count(NS) == 0


def test_unlistened_listeners_receive_nothing() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    listener, outbox = _active(hub, ("a",))
    hub.unlisten(listener)
    broker.publish(_set(1, ("a",), None, 1))
    assert _messages(outbox) == []


def test_a_slow_consumer_overflows_is_disconnected_and_counted() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    dropped: list[bool] = []
    outbox = Outbox(max_messages=3, on_overflow=lambda: dropped.append(True), metrics=hub.metrics)
    listener = hub.listen(Listener(NS, ("a",), outbox))
    hub.activate(listener, None, 0)
    _, fast = _active(hub, ("a",))
    for seq in range(1, 6):
        broker.publish(_set(seq, ("a",), seq - 1 or None, seq))
    assert dropped == [True]
    assert outbox.closed and len(outbox) == 0
    assert hub.metrics.overflow_disconnects == 1
    assert len(_messages(fast)) == 5


def test_a_listener_unlistened_by_its_overflow_during_fan_out_does_not_disturb_the_others() -> None:
    broker = InProcessBroker()
    hub = Hub(broker, WireRenderer())
    outboxes = []
    for path in [("a",), ("a",), (), ("a", "b"), ("a", "b")]:
        outbox = Outbox(max_messages=1)
        listener = hub.listen(Listener(NS, path, outbox))
        outbox._on_overflow = functools.partial(hub.unlisten, listener)  # as a connection closing at once
        hub.activate(listener, None, 0)
        outboxes.append(outbox)
    broker.publish(_set(1, ("a",), None, {"b": 1}))
    broker.publish(_set(2, ("a",), {"b": 1}, {"b": 2}))  # every outbox is full: each overflows
    assert all(outbox.closed for outbox in outboxes)
    assert hub.listener_count(NS) == 0


def test_seq_orderer_releases_changesets_in_commit_order() -> None:
    orderer = SeqOrderer()
    c1, c2, c3 = (_set(i, ("a",), None, i) for i in (1, 2, 3))
    assert orderer.push(c2) == []
    assert orderer.push(c1) == [c1, c2]
    assert orderer.push(c1) == []
    assert orderer.push(c3) == [c3]
