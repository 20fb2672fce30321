"""RedisBroker against a real Redis, with a fake change log (``fetch``) and store head
(``head``): every node releases every commit of a namespace once, in seq order, whatever
Pub/Sub loses (a message, the last message, a killed or evicted connection, a restart).

Tests that stop Redis or change its config run a private ``redis-server`` on a free port.
Without Redis these tests skip, unless ``RTDB_REQUIRE_SERVICES`` is set (CI): then they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from rtdb.core import ipc
from rtdb.core.changes import Change, ChangeSet, encode_changeset
from rtdb.core.ipc import BrokerChange, broker_change
from rtdb.realtime.redis_broker import RedisBroker

SHARED = ("127.0.0.1", 6379)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def unavailable(why: str) -> None:
    if os.environ.get("RTDB_REQUIRE_SERVICES"):
        pytest.fail(why)
    pytest.skip(why)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not listening(*SHARED):
        unavailable("no Redis at 127.0.0.1:6379")
    return f"redis://{SHARED[0]}:{SHARED[1]}"


@pytest.fixture
def prefix() -> str:
    """Channels are global to a Redis server: each test has its own."""
    return f"rtdb-test-{secrets.token_hex(6)}"


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that it may stop and start."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}"
        self.logfile = directory / "redis.log"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.logfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not listening("127.0.0.1", self.port):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # this test's own process, by its pid
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not os.path.exists(REDIS_SERVER):
        unavailable("no redis-server binary")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cs(seq: int, ns: str = "ns", size: int = 0) -> ChangeSet:
    value = "x" * size if size else seq
    return ChangeSet(ns, seq, "set", ("k",), (Change(("k",), None, value),))


class Log:
    """The store: its change log (``fetch``) and its last commit (``head``)."""

    def __init__(self) -> None:
        self.changesets: dict[int, ChangeSet] = {}
        self.calls: list[int] = []

    def commit(self, *seqs: int, size: int = 0) -> list[ChangeSet]:
        made = [cs(seq, size=size) for seq in seqs]
        for changeset in made:
            self.changesets[changeset.seq] = changeset
        return made

    async def fetch(self, after: int) -> list[ChangeSet]:
        self.calls.append(after)
        return [self.changesets[s] for s in sorted(self.changesets) if s > after]

    async def head(self, names: list[str]) -> Mapping[str, int]:
        return {"ns": max(self.changesets, default=0)} if "ns" in names else {}


@dataclass
class Node:
    broker: RedisBroker
    seen: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def node(url: str, prefix: str, log: Log, *, at: int = 0, epoch: str | None = None, poll: bool = False,
               gap_wait_s: float = 0.05, **options: Any) -> AsyncIterator[Node]:
    """A node with namespace ``ns`` open at commit ``at``."""
    broker = RedisBroker(url, prefix=prefix, head=log.head if poll else None, gap_wait_s=gap_wait_s,
                         head_poll_s=0.1, reconnect_max_s=0.2, connect_timeout_s=2, **options)
    it = Node(broker)
    broker.subscribe("ns", lambda c: it.seen.append(c.seq))
    broker.on_lost = it.lost.append
    await broker.start()
    try:
        subscribed = broker.open_namespace("ns")
        assert subscribed is not None
        await subscribed  # before the store is read
        broker.start_namespace("ns", at, log.fetch, epoch=epoch)
        yield it
    finally:
        await broker.aclose()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_change_message_is_built_without_encoding_the_changeset_again() -> None:
    changeset = cs(7, size=10)
    assert broker_change("n1", "e1", encode_changeset(changeset)) == ipc.encode(
        BrokerChange("n1", "e1", changeset))


async def test_two_publishers_interleaved_out_of_seq_order_are_released_in_order_each_once(
        redis_url: str, prefix: str) -> None:
    log = Log()
    commits = log.commit(*range(1, 401))
    async with (node(redis_url, prefix, log, gap_wait_s=2) as a1, node(redis_url, prefix, log, gap_wait_s=2) as a2,
                node(redis_url, prefix, log, gap_wait_s=2) as b):
        for k in range(0, 400, 40):  # a1 commits the even seqs, a2 the odd ones, and a1 is always ahead
            for changeset in commits[k + 1 : k + 40 : 2]:
                a1.broker.publish(changeset)
            await asyncio.sleep(0)
            for changeset in commits[k : k + 40 : 2]:
                a2.broker.publish(changeset)
            await asyncio.sleep(0)
        last = a1.broker.delivered(commits[-1])  # a1's own last commit, released once a2's arrived
        if last is not None:
            await asyncio.wait_for(last, 5)
        everything = list(range(1, 401))
        await until(lambda: b.seen == everything and a2.seen == everything)
        assert a1.seen == everything
        assert log.calls == []  # Pub/Sub lost nothing: nothing was read from the log
        assert b.broker.stats.received == 400 and a1.broker.stats.sent == 200


async def test_a_dropped_message_is_read_from_the_log(redis_url: str, prefix: str) -> None:
    log = Log()
    one, _, three = log.commit(1, 2, 3)
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
        a.broker.publish(one)
        a.broker.publish(three)  # commit 2's node died before publishing it
        await until(lambda: b.seen == [1, 2, 3])
        assert b.broker.stats.read_from_log == 1 and b.lost == []


async def test_a_dropped_last_message_is_read_from_the_log_after_the_head_poll(redis_url: str, prefix: str) -> None:
    log = Log()
    one, _ = log.commit(1, 2)
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log, poll=True) as b:
        a.broker.publish(one)  # commit 2, the last, is never published: no later seq shows the gap
        await until(lambda: b.seen == [1, 2])
        assert b.broker.stats.head_fills == 1 and b.broker.stats.read_from_log == 1 and b.lost == []


async def test_a_killed_subscribe_connection_subscribes_again_and_reads_what_it_missed(
        private_redis: PrivateRedis, prefix: str) -> None:
    log = Log()
    commits = log.commit(*range(1, 11))
    async with node(private_redis.url, prefix, log) as a, node(private_redis.url, prefix, log) as b:
        for changeset in commits[:3]:
            a.broker.publish(changeset)
        await until(lambda: b.seen == [1, 2, 3])
        with private_redis.client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        for changeset in commits[3:]:  # published while b is not subscribed: lost by Pub/Sub
            a.broker.publish(changeset)
        await until(lambda: b.seen == list(range(1, 11)))
        assert b.broker.stats.reconnects == 1 and b.broker.stats.read_from_log == 7 and b.lost == []
        await until(b.broker.is_subscribed)
        a.broker.publish(log.commit(11)[0])  # and Pub/Sub carries the next commit again
        await until(lambda: b.seen[-1:] == [11])
        assert b.broker.stats.read_from_log == 7


async def test_a_subscriber_evicted_for_reading_too_slowly_recovers_from_the_log(
        private_redis: PrivateRedis, prefix: str) -> None:
    log = Log()
    commits = log.commit(*range(1, 301), size=100_000)  # 30 MB: more than the sockets' buffers hold
    with private_redis.client() as client:
        client.config_set("client-output-buffer-limit", "pubsub 64kb 0 0")
        async with node(private_redis.url, prefix, log) as b:
            # publish while b's event loop is stalled (this loop runs b, and is blocked here)
            for changeset in commits:
                client.publish(f"{prefix}:ns:ns", broker_change("other", "", encode_changeset(changeset)))
            await until(lambda: b.seen == list(range(1, 301)), timeout=20)
            assert b.broker.stats.reconnects >= 1 and b.lost == []
    assert "overcoming of output buffer limits" in private_redis.logfile.read_text()


async def test_a_new_epoch_reports_the_namespace_lost(redis_url: str, prefix: str) -> None:
    log = Log()
    one, two = log.commit(1, 2)
    async with (node(redis_url, prefix, log, epoch="e2") as a,  # the store was restored: history e2
                node(redis_url, prefix, log, epoch="e1") as b):
        a.broker.publish(one)
        await until(lambda: b.seen == [1])
        assert b.lost == ["ns"]
        with redis.Redis.from_url(redis_url) as client:  # a straggler of history e1
            client.publish(f"{prefix}:ns:ns", broker_change("old", "e1", encode_changeset(cs(5))))
        a.broker.publish(two)
        await until(lambda: b.seen == [1, 2])
        await b.broker.sync()
        assert b.seen == [1, 2] and b.lost == ["ns"]


async def test_a_log_trimmed_past_the_last_commit_skips_ahead_and_reports_the_namespace_lost(
        redis_url: str, prefix: str) -> None:
    log = Log()
    *_, seven = log.commit(5, 6, 7)  # commits 1..4 were trimmed from the log
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
        a.broker.publish(seven)
        await until(lambda: b.seen == [5, 6, 7])
        assert b.lost == ["ns"] and b.broker.stats.skipped == 4


async def test_a_large_changeset_goes_as_a_pointer_read_from_the_log(redis_url: str, prefix: str) -> None:
    log = Log()
    (big,) = log.commit(1, size=5000)
    async with node(redis_url, prefix, log, pointer_above=1000) as a, node(redis_url, prefix, log) as b:
        a.broker.publish(big)
        await until(lambda: b.seen == [1])
        assert a.broker.stats.pointers == 1 and b.broker.stats.read_from_log == 1 and log.calls == [0]
        assert a.seen == [1]


async def test_brokers_with_different_prefixes_do_not_hear_each_other(redis_url: str, prefix: str) -> None:
    log = Log()
    (one,) = log.commit(1)
    async with (node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as same,
                node(redis_url, prefix + "-other", log) as other):
        a.broker.publish(one)
        await until(lambda: same.seen == [1])
        await other.broker.sync()  # whatever Redis sent it before now is handled
        assert other.seen == [] and other.broker.stats.received == 0


async def test_own_changesets_are_released_once_when_published_and_their_echo_dropped(
        redis_url: str, prefix: str) -> None:
    log = Log()
    (one,) = log.commit(1)
    async with node(redis_url, prefix, log) as a:
        a.broker.publish(one)
        assert a.seen == [1]
        await until(lambda: a.broker.stats.received == 1)  # the echo
        assert a.seen == [1]


async def test_announcements_reach_the_other_brokers_only(redis_url: str, prefix: str) -> None:
    log = Log()
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
        heard_a: list[tuple[str, str]] = []
        heard_b: list[tuple[str, str]] = []
        a.broker.on_announce(lambda kind, ns: heard_a.append((kind, ns)))
        b.broker.on_announce(lambda kind, ns: heard_b.append((kind, ns)))
        a.broker.announce("rules", "ns")
        await until(lambda: heard_b == [("rules", "ns")])
        await a.broker.sync()
        assert heard_a == []


async def test_an_opened_namespace_is_subscribed_before_its_store_is_read(redis_url: str, prefix: str) -> None:
    log = Log()
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
        subscribed = b.broker.open_namespace("other")
        assert subscribed is not None
        await subscribed
        b.broker.start_namespace("other", 0, Log().fetch)  # it read commit 0 from the store
        seen: list[int] = []
        b.broker.subscribe("other", lambda c: seen.append(c.seq))
        a.broker.publish(cs(1, ns="other"))  # committed right after that read
        await until(lambda: seen == [1])
        assert b.broker.stats.read_from_log == 0


async def test_a_forgotten_namespace_is_unsubscribed(redis_url: str, prefix: str) -> None:
    log = Log()
    one, two = log.commit(1, 2)
    async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
        a.broker.publish(one)
        await until(lambda: b.seen == [1])
        b.broker.forget_namespace("ns")
        a.broker.publish(two)
        await until(lambda: a.broker.stats.received == 2)  # a's echo: Redis has published it
        await b.broker.sync()
        assert b.broker.stats.received == 1 and b.seen == [1]


async def test_a_writer_waits_until_the_commits_before_its_own_arrived(redis_url: str, prefix: str) -> None:
    log = Log()
    one, two = log.commit(1, 2)
    async with node(redis_url, prefix, log, gap_wait_s=5) as a, node(redis_url, prefix, log) as b:
        a.broker.publish(two)
        pending = a.broker.delivered(two)
        assert pending is not None and a.seen == []
        b.broker.publish(one)
        await asyncio.wait_for(pending, 5)
        assert a.seen == [1, 2] and log.calls == []


async def test_after_a_redis_restart_nothing_is_missing_or_reordered(private_redis: PrivateRedis, prefix: str) -> None:
    log = Log()
    published = 0

    async def write(a: Node, until_s: float) -> None:
        nonlocal published
        end = time.monotonic() + until_s
        while time.monotonic() < end:
            published += 1
            a.broker.publish(log.commit(published)[0])
            await asyncio.sleep(0.01)

    async with node(private_redis.url, prefix, log) as a, node(private_redis.url, prefix, log, poll=True) as b:
        writer = asyncio.create_task(write(a, 4.5))
        await until(lambda: len(b.seen) >= 20)
        private_redis.stop()
        before = len(b.seen)
        await asyncio.sleep(3)  # Redis is down for 3 s; the writer goes on
        during = len(b.seen)
        private_redis.start()
        await writer
        await until(lambda: b.seen == list(range(1, published + 1)))
        await until(b.broker.is_subscribed)
        assert b.broker.stats.reconnects == 1 and b.broker.stats.head_fills >= 1 and b.lost == []
        assert a.broker.stats.unsent > 0  # what a published while Redis was down was dropped...
        assert during > before  # ...and the head poll delivered it from the log meanwhile
        await until(lambda: a.broker.is_subscribed())
        a.broker.publish(log.commit(published + 1)[0])
        await until(lambda: b.seen[-1] == published + 1)


def test_it_runs_on_uvloop_as_the_server_does(redis_url: str, prefix: str) -> None:
    """uvloop's transports are no subclasses of asyncio's."""
    import uvloop

    async def scenario() -> list[int]:
        log = Log()
        (one,) = log.commit(1)
        async with node(redis_url, prefix, log) as a, node(redis_url, prefix, log) as b:
            a.broker.publish(one)
            await until(lambda: b.seen == [1])
            return b.seen

    assert uvloop.run(scenario()) == [1]
