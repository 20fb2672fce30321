"""RelayBroker, the worker's end of `rtdb serve --workers`: its own and relayed ChangeSets
reach local subscribers in seq order; an overdue one is read from the change log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rtdb.core import ipc
from rtdb.core.changes import Change, ChangeSet
from rtdb.core.ipc import BrokerAnnounce, BrokerChange, BrokerPointer
from rtdb.realtime.relay import FrameReader, RelayBroker, frame


def cs(seq: int, ns: str = "ns") -> ChangeSet:
    return ChangeSet(ns, seq, "set", ("k",), (Change(("k",), seq - 1, seq),))


def relayed(changeset: ChangeSet) -> bytes:
    return ipc.encode(BrokerChange("", "", changeset))


class Log:
    """A change log: what ``fetch`` reads, and the calls it got."""

    def __init__(self, *changesets: ChangeSet) -> None:
        self.changesets = list(changesets)
        self.calls: list[int] = []

    async def fetch(self, after: int) -> list[ChangeSet]:
        self.calls.append(after)
        return [c for c in self.changesets if c.seq > after]


def started(log: Log | None = None, *, at: int = 0, gap_wait_s: float = 0.01) -> tuple[RelayBroker, list[int]]:
    broker = RelayBroker(gap_wait_s=gap_wait_s)
    seen: list[int] = []
    broker.subscribe("ns", lambda c: seen.append(c.seq))
    broker.open_namespace("ns")
    broker.start_namespace("ns", at, (log or Log()).fetch)
    return broker, seen


def test_frames_split_anywhere_are_reassembled() -> None:
    data = frame(b"one") + frame(b"") + frame(b"three" * 1000)
    reader = FrameReader()
    out = [p for i in range(0, len(data), 7) for p in reader.feed(data[i : i + 7])]
    assert out == [b"one", b"", b"three" * 1000]


def test_complete_frames_are_passed_on_still_framed_and_the_rest_kept() -> None:
    data = frame(b"one") + frame(b"two")
    reader = FrameReader()
    assert reader.complete(data[:5]) == b""
    assert reader.complete(data[5:-1]) == frame(b"one")
    assert reader.complete(data[-1:]) == frame(b"two")


async def test_what_one_turn_of_the_loop_publishes_goes_out_in_one_write() -> None:
    broker, seen = started()
    sent: list[bytes] = []
    broker.attach(sent.append)
    for seq in (1, 2, 3):
        broker.publish(cs(seq))
    await asyncio.sleep(0)
    assert len(sent) == 1
    assert list(FrameReader().feed(sent[0])) == [relayed(cs(s)) for s in (1, 2, 3)]
    assert seen == [1, 2, 3]


def test_an_absurd_frame_length_is_refused() -> None:
    with pytest.raises(ValueError, match="relay frame"):
        list(FrameReader().feed(b"\xff\xff\xff\xff"))


async def test_own_and_relayed_changesets_reach_subscribers_in_seq_order() -> None:
    broker, seen = started()
    sent: list[bytes] = []
    broker.attach(sent.append)
    broker.received(relayed(cs(2)))  # another worker's commit 2 arrives before our own commit 1 is published
    assert seen == []
    broker.publish(cs(1))
    assert seen == [1, 2]
    await asyncio.sleep(0)  # frames go out once per turn of the loop
    assert list(FrameReader().feed(b"".join(sent))) == [relayed(cs(1))]


async def test_delivered_waits_until_the_commit_is_released() -> None:
    broker, seen = started()
    broker.publish(cs(2))  # ours, but commit 1 (another worker's) has not arrived
    pending = broker.delivered(cs(2))
    assert pending is not None and seen == []
    broker.received(relayed(cs(1)))
    await asyncio.wait_for(pending, 1)
    assert seen == [1, 2]
    assert broker.delivered(cs(2)) is None


async def test_an_overdue_commit_is_read_from_the_change_log() -> None:
    log = Log(cs(1), cs(2))
    broker, seen = started(log)
    lost: list[str] = []
    broker.on_lost = lost.append
    broker.received(relayed(cs(2)))  # commit 1's worker died before relaying it
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == [1, 2]
    assert log.calls == [0]
    assert lost == []  # nothing was lost: no client restarts
    assert broker.stats.read_from_log == 1


async def test_a_commit_in_no_log_is_skipped_after_the_wait_not_waited_for_for_ever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, seen = started(Log())
    lost: list[str] = []
    broker.on_lost = lost.append  # the app restarts that namespace's clients
    caplog.set_level(logging.ERROR, "rtdb.realtime")
    broker.received(relayed(cs(3)))
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == [3]
    assert broker.stats.skipped == 2 and lost == ["ns"]
    assert "commits 1..2 are in no change log" in caplog.text


async def test_what_arrives_while_a_namespace_opens_is_kept_and_what_it_read_is_not_repeated() -> None:
    broker = RelayBroker()
    seen: list[int] = []
    broker.subscribe("ns", lambda c: seen.append(c.seq))
    broker.open_namespace("ns")
    broker.received(relayed(cs(5)))
    broker.received(relayed(cs(6)))
    broker.start_namespace("ns", 5, Log().fetch)  # the open read commit 5
    assert seen == [6]


async def test_changesets_of_namespaces_this_process_has_not_opened_are_dropped() -> None:
    broker, seen = started()
    other: list[int] = []
    broker.subscribe("elsewhere", lambda c: other.append(c.seq))
    broker.received(relayed(cs(1, ns="elsewhere")))
    assert other == [] and seen == []


async def test_announcements_go_out_and_come_in() -> None:
    broker, _ = started()
    sent: list[bytes] = []
    broker.attach(sent.append)
    heard: list[tuple[str, str]] = []
    broker.on_announce(lambda kind, ns: heard.append((kind, ns)))
    broker.announce("rules", "ns")
    await asyncio.sleep(0)
    (payload,) = FrameReader().feed(b"".join(sent))
    assert ipc.decode_broker(payload) == BrokerAnnounce("", "rules", "ns")
    broker.received(payload)
    assert heard == [("rules", "ns")]


async def test_without_a_link_publishing_still_reaches_local_subscribers() -> None:
    broker, seen = started()
    broker.attach(None)
    broker.publish(cs(1))
    assert seen == [1] and broker.stats.sent == 0


async def test_a_dropped_namespace_counts_its_commits_from_its_new_file() -> None:
    broker, seen = started(at=0)
    broker.received(relayed(cs(1)))
    broker.received(relayed(cs(2)))
    waiting = broker.delivered(cs(5))  # a writer of the old file waits for commit 5
    assert waiting is not None
    broker.forget_namespace("ns")
    assert waiting.done()  # nobody waits for ever on a dropped namespace
    broker.received(relayed(cs(3)))  # the old file's, still on its way: kept by nobody
    broker.open_namespace("ns")
    broker.start_namespace("ns", 0, Log().fetch)  # the new file starts from 0
    broker.received(relayed(cs(1)))
    assert seen == [1, 2, 1]


async def test_a_pointer_is_read_from_the_change_log_at_once() -> None:
    """Any broker message is understood: a pointer (which the Redis broker sends for a large
    ChangeSet) makes the worker read that commit from the log without waiting for a gap."""
    log = Log(cs(1), cs(2))
    broker, seen = started(log, gap_wait_s=60)
    broker.received(ipc.encode(BrokerPointer("", "", "ns", 2)))
    for _ in range(100):
        if seen == [1, 2]:
            break
        await asyncio.sleep(0.01)
    assert seen == [1, 2] and log.calls == [0]
