"""OrderedFeed, the ordering half of every broker between processes: ChangeSets reach
subscribers in seq order, each once; what is overdue is read from the change log; what is
in no log is skipped and the namespace reported lost; a new epoch restarts the order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from rtdb.core.changes import Change, ChangeSet
from rtdb.realtime.broker import Head
from rtdb.realtime.ordered import FeedStats, OrderedFeed


def cs(seq: int, ns: str = "ns") -> ChangeSet:
    return ChangeSet(ns, seq, "set", ("k",), (Change(("k",), seq - 1, seq),))


class Log:
    """A change log: what ``fetch`` reads, and the calls it got."""

    def __init__(self, *seqs: int) -> None:
        self.seqs = list(seqs)
        self.calls: list[int] = []

    async def fetch(self, after: int) -> list[ChangeSet]:
        self.calls.append(after)
        return [cs(s) for s in self.seqs if s > after]


class Feed(OrderedFeed[FeedStats]):
    """A feed with no transport: the test hands it what arrives."""

    def __init__(self) -> None:
        super().__init__(FeedStats(), gap_wait_s=0.01)
        self.seen: list[int] = []
        self.lost: list[str] = []
        self.on_lost = self.lost.append
        self.subscribe("ns", lambda c: self.seen.append(c.seq))

    def arrive(self, seq: int, epoch: str | None = None) -> None:
        self._arrived(cs(seq), epoch)


def started(log: Log | None = None, *, at: int = 0, epoch: str | None = None) -> Feed:
    feed = Feed()
    feed.open_namespace("ns")
    feed.start_namespace("ns", at, (log or Log()).fetch, epoch=epoch)
    return feed


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (without sleeping a fixed time) until ``condition()`` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def heads(**seqs: int | tuple[str, int]) -> Head:
    async def head(names: list[str]) -> Mapping[str, int | tuple[str, int]]:
        return {n: seqs[n] for n in names if n in seqs}

    return head


async def test_changesets_arriving_out_of_order_are_released_in_order_each_once() -> None:
    feed = started()
    for seq in (3, 1, 3, 2, 1, 4):
        feed.arrive(seq)
    assert feed.seen == [1, 2, 3, 4]


async def test_a_commit_that_did_not_arrive_is_read_from_the_log() -> None:
    log = Log(1, 2)
    feed = started(log)
    feed.arrive(2)
    await until(lambda: feed.seen == [1, 2])
    assert log.calls == [0] and feed.stats.read_from_log == 1 and feed.lost == []


async def test_a_log_trimmed_past_the_last_commit_skips_ahead_and_reports_the_namespace_lost() -> None:
    feed = started(Log(5, 6, 7), at=2)
    feed.arrive(7)
    await until(lambda: feed.seen == [5, 6, 7])
    assert feed.lost == ["ns"] and feed.stats.skipped == 2 and feed.stats.lost == 1


async def test_the_head_names_a_lost_last_commit_which_is_then_read_from_the_log() -> None:
    log = Log(1, 2)
    feed = started(log)
    feed.arrive(1)  # commit 2, the last of the burst, never arrives
    await feed._poll_heads(heads(ns=2))
    await until(lambda: feed.seen == [1, 2])
    assert feed.stats.head_fills == 1 and feed.lost == []


async def test_a_head_that_arrives_in_time_reads_no_log() -> None:
    log = Log(1, 2)
    feed = started(log)
    await feed._poll_heads(heads(ns=2))
    feed.arrive(1)
    feed.arrive(2)
    await asyncio.sleep(0.05)  # past gap_wait_s: no log read may start now
    assert feed.seen == [1, 2] and log.calls == [] and feed.stats.head_fills == 0


async def test_a_head_the_log_cannot_reach_skips_to_it() -> None:
    feed = started(Log())
    await feed._poll_heads(heads(ns=3))
    await until(lambda: feed.lost == ["ns"])
    assert feed.last_seq("ns") == 3 and feed.stats.skipped == 3
    feed.arrive(4)
    assert feed.seen == [4]


async def test_a_head_below_what_was_released_restarts_the_order() -> None:
    feed = started()
    for seq in (1, 2, 3):
        feed.arrive(seq)
    await feed._poll_heads(heads(ns=1))
    assert feed.lost == ["ns"] and feed.last_seq("ns") == 1
    feed.arrive(2)
    assert feed.seen == [1, 2, 3, 2]


async def test_a_head_in_another_epoch_restarts_the_order_at_it() -> None:
    feed = started(epoch="e1")
    feed.arrive(1, "e1")
    await feed._poll_heads(heads(ns=("e2", 4)))  # restored (or dropped and made anew) meanwhile
    assert feed.lost == ["ns"] and feed.last_seq("ns") == 4
    await feed._poll_heads(heads(ns=("e1", 9)))  # a stale read naming the history left behind
    feed.arrive(5, "e2")
    assert feed.seen == [1, 5] and feed.lost == ["ns"] and feed.stats.head_fills == 0


async def test_a_head_names_the_history_when_none_was_known() -> None:
    feed = started(Log(1))
    await feed._poll_heads(heads(ns=("e1", 1)))
    await until(lambda: feed.seen == [1])
    feed.arrive(2, "e1")
    assert feed.seen == [1, 2] and feed.lost == []


async def test_a_new_epoch_reports_the_namespace_lost_and_restarts_at_its_commit() -> None:
    feed = started(epoch="e1")
    feed.arrive(1, "e1")
    feed.arrive(2, "e1")
    waiting = feed.delivered(cs(9))  # a writer of the old history waits for its commit
    assert isinstance(waiting, asyncio.Future)
    feed.arrive(5, "e2")
    assert feed.lost == ["ns"] and waiting.done()
    feed.arrive(3, "e1")  # a straggler of the old history: dropped
    feed.arrive(6, "e2")
    assert feed.seen == [1, 2, 5, 6]


async def test_a_changeset_without_an_epoch_is_not_checked() -> None:
    feed = started(epoch="e1")
    feed.arrive(1, "")
    feed.arrive(2, None)
    assert feed.seen == [1, 2] and feed.lost == []


async def test_a_reopened_namespace_with_another_epoch_restarts_its_order() -> None:
    feed = started(epoch="e1")
    feed.arrive(1, "e1")
    feed.start_namespace("ns", 7, Log().fetch, epoch="e2")  # restored while it was closed here
    assert feed.lost == ["ns"] and feed.last_seq("ns") == 7
    feed.arrive(8, "e2")
    assert feed.seen == [1, 8]


async def test_what_arrives_before_the_start_is_kept_and_an_early_pointer_read_from_the_log() -> None:
    log = Log(1, 2, 3)
    feed = Feed()
    feed.open_namespace("ns")
    feed.arrive(2)
    feed._want("ns", 3, now=True)  # e.g. a pointer to a large commit 3, before the start
    feed.start_namespace("ns", 1, log.fetch)
    await until(lambda: feed.seen == [2, 3])
    assert log.calls == [2]


async def test_a_fill_asked_for_while_one_is_under_way_reads_the_log_again_afterwards() -> None:
    gate = asyncio.Event()

    class SlowLog(Log):
        async def fetch(self, after: int) -> list[ChangeSet]:
            found = await super().fetch(after)  # what the log holds when the read starts
            await gate.wait()
            return found

    log = SlowLog(1)
    feed = started(log)
    feed._fill_now("ns")
    await until(lambda: log.calls == [0])
    log.seqs.append(2)  # committed after the read under way looked
    feed._fill_now("ns")  # e.g. a reconnect: everything sent meanwhile was lost
    gate.set()
    await until(lambda: feed.seen == [1, 2])
    assert log.calls == [0, 1]


async def test_delivered_waits_for_the_release_and_forget_settles_it() -> None:
    feed = started()
    feed.arrive(2)
    pending = feed.delivered(cs(2))
    assert pending is not None
    feed.arrive(1)
    await asyncio.wait_for(pending, 1)
    waiting = feed.delivered(cs(5))
    assert isinstance(waiting, asyncio.Future)
    feed.forget_namespace("ns")
    assert waiting.done() and feed.last_seq("ns") is None
