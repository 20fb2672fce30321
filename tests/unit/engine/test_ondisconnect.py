"""onDisconnect registries: the in-memory one (one node, SQLite: behaviour as before) and the
durable one in PostgreSQL, which takes and runs a session's operations in one transaction of
the namespace's write group (each runs exactly once: concurrent takers, sweeps of expired
nodes, a group that fails after the claim; takeovers refused to other callers), and running
taken operations as their callers, rules re-checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS, Caller
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import Unavailable
from rtdb.engine.access import RulesAccess
from rtdb.engine.cluster import Cluster, PostgresRegistry
from rtdb.engine.engine import Engine
from rtdb.engine.ondisconnect import DisconnectOp, MemoryRegistry
from rtdb.engine.writer import InProcessWriter
from rtdb.engine.writes import WriteResult, Writes
from rtdb.rules import Ruleset

ALICE = Caller(auth={"uid": "alice", "provider": "custom"})
BOB = Caller(auth={"uid": "bob", "provider": "custom"})

OPS = [
    DisconnectOp("default", "set", ("presence", "alice"), {"online": False}, ALICE),
    DisconnectOp("default", "set", ("presence", "bob"), None, ALICE),
    DisconnectOp("default", "update", ("presence", "carol"), {"state": "away"}, ALICE),
    DisconnectOp("default", "set", ("presence", "dave"), "gone", ALICE),
    DisconnectOp("default", "set", ("presence", "dave", "x"), 1, ALICE),
]


# -- in memory ------------------------------------------------------------------------
async def test_memory_ops_are_taken_in_order_once_and_cancel_drops_ops_at_or_below() -> None:
    registry = MemoryRegistry()
    for op in OPS:
        await registry.register("s1", op)
    assert await registry.cancel("s1", ("presence", "dave")) == 2
    assert await registry.take("s1") == OPS[:3]
    assert await registry.take("s1") == []


async def test_memory_cancel_at_the_root_drops_everything() -> None:
    registry = MemoryRegistry()
    for op in OPS:
        await registry.register("s1", op)
    assert await registry.cancel("s1", ()) == len(OPS)
    assert await registry.take("s1") == []


async def test_memory_takeover_needs_the_registering_caller_and_takes_once() -> None:
    registry = MemoryRegistry()
    await registry.register("s1", OPS[0])
    assert await registry.takeover("s1", lambda caller: caller == BOB) is None
    assert await registry.takeover("s1", lambda caller: caller == ALICE) == [OPS[0]]
    assert await registry.take("s1") == []
    assert await registry.takeover("nobody", lambda caller: False) == []


async def test_memory_discard_forgets_without_running() -> None:
    registry = MemoryRegistry()
    await registry.register("s1", OPS[0])
    await registry.discard("s1")
    assert await registry.take("s1") == []
    assert await registry.sweep() == 0


# -- running taken operations -----------------------------------------------------------
RULES = """{"rules": {"presence": {"$uid": {".read": true, ".write": "auth != null && auth.uid === $uid"}},
                      "open": {".read": true, ".write": true}}}"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    e = Engine(tmp_path, access=RulesAccess(Ruleset.compile(RULES)), synchronous="NORMAL")
    yield e
    await e.close()


async def test_taken_ops_run_in_order_as_their_caller(engine: Engine) -> None:
    ops = [DisconnectOp("default", "set", ("presence", "alice"), {"online": True}, ALICE),
           DisconnectOp("default", "update", ("presence", "alice"), {"online": False, "n": 2}, ALICE)]
    assert await engine.run_disconnect(ops) == 2
    assert await engine.get("default", ("presence", "alice"), caller=ADMIN) == {"online": False, "n": 2}


async def test_rules_are_checked_again_when_an_op_runs(engine: Engine) -> None:
    """Registered as alice (allowed then); run as alice: a write to bob's place is refused and
    skipped, the ops after it still run."""
    ops = [DisconnectOp("default", "set", ("presence", "bob"), "offline", ALICE),
           DisconnectOp("default", "set", ("presence", "alice"), "offline", ALICE),
           DisconnectOp("default", "set", ("presence", "carol"), "offline", ANONYMOUS)]
    assert await engine.run_disconnect(ops) == 1
    assert await engine.get("default", ("presence",), caller=ADMIN) == {"alice": "offline"}


# -- in PostgreSQL ----------------------------------------------------------------------
INC = {".sv": {"increment": 1}}


class Node:
    """A node of the test cluster: its own engine on the shared schema, connections and lease
    (no background tasks unless started)."""

    def __init__(self, url: str, data_dir: Path, lease_s: float = 10.0) -> None:
        self.engine = Engine(data_dir, access=RulesAccess(Ruleset.compile(RULES)), database_url=url)
        self.cluster = Cluster(url, name="t", lease_s=lease_s)
        self.registry: PostgresRegistry = self.cluster.registry
        self.registry.engine = self.engine

    async def join(self) -> Node:
        await self.cluster.db.open()
        await self.cluster._register()
        return self

    async def leave(self) -> None:
        await self.cluster.db.close()
        await self.engine.close()

    async def value(self, *path: str) -> object:
        return await self.engine.get("default", path, caller=ADMIN)


@pytest.fixture
def pg_url() -> Iterator[str]:
    from unit.storage.pg_service import fresh_url

    with fresh_url() as url:
        yield url


@pytest.fixture
async def nodes(pg_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Makes nodes that have joined; they leave afterwards."""
    made: list[Node] = []

    async def make(lease_s: float = 10.0) -> Node:
        node = Node(pg_url, tmp_path / str(len(made)), lease_s)
        made.append(node)
        return await node.join()

    yield make
    for node in made:
        await node.leave()


def stored(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        row = pg.execute("SELECT count(*) FROM rtdb_ondisconnect").fetchone()
        return int(row[0]) if row else -1


def counted(ops: int) -> dict[str, int]:
    return {str(k): 1 for k in range(ops)}


async def test_pg_take_runs_the_ops_in_order_as_their_callers_each_with_its_own_changeset(
        nodes: Callable[..., Awaitable[Node]], pg_url: str) -> None:
    """Rules checked when they run: a denied op and an invalid one are skipped, the others run;
    a cancelled op does not; another session's ops stay."""
    node = await nodes()
    ops = [DisconnectOp("default", "set", ("presence", "alice"), {"online": True}, ALICE),
           DisconnectOp("default", "set", ("presence", "bob"), "offline", ALICE),  # denied now
           DisconnectOp("default", "update", ("presence", "alice"), {"online": False, "n": 2}, ALICE),
           DisconnectOp("default", "set", ("open", "bad"), {"a.b": 1}, ALICE),  # invalid key
           DisconnectOp("default", "set", ("presence", "alice", "gone"), True, ALICE),  # cancelled
           DisconnectOp("default", "set", ("open", "at"), {".sv": "timestamp"}, ANONYMOUS)]
    for op in ops:
        await node.registry.register("s1", op)
    await node.registry.register("s2", DisconnectOp("default", "set", ("open", "s2"), 1, ALICE))
    assert await node.registry.cancel("s1", ("presence", "alice", "gone")) == 1
    seen: list[ChangeSet] = []
    node.engine.feed.subscribe("default", seen.append)

    assert await node.registry.take("s1") == []  # ran here: nothing left to the caller
    assert [(c.kind, c.base) for c in seen] == [("set", ("presence", "alice")), ("update", ("presence", "alice")),
                                                ("set", ("open", "at"))]  # delivered before take returned
    assert [c.seq for c in seen] == [seen[0].seq, seen[0].seq + 1, seen[0].seq + 2]
    assert await node.value("presence") == {"alice": {"online": False, "n": 2}}
    assert isinstance(await node.value("open", "at"), int)
    assert await node.value("open", "bad") is None
    assert await node.registry.take("s1") == []
    assert len(seen) == 3 and stored(pg_url) == 1  # s2's op is still there
    assert await node.registry.take("s2") == []
    assert await node.value("open", "s2") == 1 and stored(pg_url) == 0


async def test_pg_values_and_callers_round_trip(nodes: Callable[..., Awaitable[Node]]) -> None:
    node = await nodes()
    caller = Caller(auth={"uid": "bob", "provider": "custom", "token": {"n": 2**60}}, expires_at_ms=2**50)
    value = {"nul": "a\u0000b", "f": 1.5, "big": 2**60}
    await node.registry.register("s1", DisconnectOp("default", "update", ("presence", "bob"), {"x/y": value}, caller))
    assert await node.registry.take("s1") == []
    assert await node.value("presence", "bob", "x", "y") == value


async def test_pg_each_op_runs_once_with_two_concurrent_takers(nodes: Callable[..., Awaitable[Node]],
                                                               pg_url: str) -> None:
    """A node's clean close and another node's takeover race for the same sessions: every op
    of a session runs once, by one of them, all in order."""
    a, b = await nodes(), await nodes()
    sessions = [f"s{i}" for i in range(30)]
    for i, session in enumerate(sessions):
        for k in range(3):
            await a.registry.register(session, DisconnectOp("default", "set", ("open", str(i), str(k)), INC, ALICE))
    seen: list[ChangeSet] = []
    a.engine.feed.subscribe("default", seen.append)
    b.engine.feed.subscribe("default", seen.append)
    taken = await asyncio.gather(*[a.registry.take(s) if node is a else b.registry.takeover(s, lambda caller: True)
                                   for s in sessions for node in (a, b)])
    assert taken == [[]] * len(taken)
    assert await a.value("open") == {str(i): counted(3) for i in range(len(sessions))}
    assert stored(pg_url) == 0
    assert len(seen) == 3 * len(sessions)
    for i in range(len(sessions)):  # one taker ran each session's ops, in order
        paths_run = [c.base for c in seen if c.base[1] == str(i)]
        assert paths_run == [("open", str(i), str(k)) for k in range(3)]


async def test_pg_takeover_is_refused_to_another_caller_and_leaves_the_ops(
        nodes: Callable[..., Awaitable[Node]], pg_url: str) -> None:
    a, b = await nodes(), await nodes()
    await a.registry.register("s1", DisconnectOp("default", "set", ("open", "n"), INC, ALICE))
    assert await b.registry.takeover("s1", lambda caller: caller == BOB) is None
    assert stored(pg_url) == 1 and await a.value("open") is None
    assert await b.registry.takeover("s1", lambda caller: caller == ALICE) == []
    assert await a.value("open", "n") == 1
    assert await a.registry.take("s1") == []  # the old node's close later finds nothing
    assert await b.registry.takeover("s1", lambda caller: True) == []
    assert await a.value("open", "n") == 1


async def test_pg_an_expired_node_is_swept_once_and_registers_nothing_more(
        nodes: Callable[..., Awaitable[Node]], pg_url: str) -> None:
    dead, alive, other = await nodes(lease_s=0.5), await nodes(), await nodes()
    await dead.registry.register("s1", DisconnectOp("default", "set", ("open", "s1"), INC, ALICE))
    await dead.registry.register("s2", DisconnectOp("default", "set", ("open", "s2"), INC, ALICE))
    await alive.registry.register("s3", DisconnectOp("default", "set", ("open", "s3"), INC, ALICE))
    await asyncio.sleep(0.7)
    with pytest.raises(Unavailable):  # fenced by its own clock: registers nothing
        await dead.registry.register("s1", OPS[3])
    assert await dead.registry.take("s1") == []  # ... and runs nothing: the sweepers will
    assert await alive.value("open") is None
    await asyncio.gather(*dead.cluster._tasks)  # it expires its row
    swept = await asyncio.gather(alive.registry.sweep(), other.registry.sweep())
    assert sum(swept) == 2
    assert await alive.value("open") == {"s1": 1, "s2": 1}
    assert await alive.registry.sweep() == 0
    nodes_left = await alive.cluster.db.nodes()
    assert [n[0] for n in nodes_left] == sorted([alive.cluster.node_id, other.cluster.node_id])
    assert stored(pg_url) == 1  # a live node's sessions are not swept
    assert await alive.registry.take("s3") == []
    assert await alive.value("open") == {"s1": 1, "s2": 1, "s3": 1}


async def test_pg_a_node_whose_lease_ran_out_in_postgresql_stores_nothing(
        nodes: Callable[..., Awaitable[Node]]) -> None:
    """Even when the node's own clock has not noticed yet (the INSERT checks the lease)."""
    node = await nodes()
    assert node.cluster.node_id is not None
    await node.cluster.db.expire(node.cluster.node_id)
    with pytest.raises(Unavailable):
        await node.registry.register("s1", OPS[0])
    assert await node.registry.take("s1") == []


async def test_pg_a_taker_whose_lease_ran_out_in_postgresql_takes_nothing(
        nodes: Callable[..., Awaitable[Node]], pg_url: str) -> None:
    """The DELETE checks the taker's lease too: the ops are left to the sweepers."""
    node, sweeper = await nodes(), await nodes()
    await node.registry.register("s1", DisconnectOp("default", "set", ("open", "n"), INC, ALICE))
    assert node.cluster.node_id is not None
    await node.cluster.db.expire(node.cluster.node_id)
    assert await node.registry.take("s1") == []
    assert stored(pg_url) == 1 and await node.value("open") is None
    assert await sweeper.registry.sweep() == 1
    assert await node.value("open", "n") == 1 and stored(pg_url) == 0


class FailingWrites(Writes):
    """Fails the first ``disconnect`` command after its DELETE and its first op's write: by
    raising, or by killing the writer's connection to PostgreSQL."""

    def __init__(self, access: RulesAccess, how: str) -> None:
        super().__init__(access, shared=True)
        self.how = how
        self.failed = False

    def _disconnect_op(self, txn: Any, ns: str, op: DisconnectOp, now: int) -> WriteResult:
        result = super()._disconnect_op(txn, ns, op, now)
        if not self.failed:
            self.failed = True
            if self.how == "raise":
                raise RuntimeError("injected after the claim and a write")
            import psycopg
            from unit.storage.pg_service import BASE_URL

            with psycopg.connect(BASE_URL, autocommit=True) as pg:
                pg.execute("SELECT pg_terminate_backend(%s)", (txn.conn.pg.info.backend_pid,))
        return result


@pytest.mark.parametrize("how", ["raise", "kill"])
async def test_pg_a_group_that_fails_after_the_claim_leaves_the_ops_for_the_next_taker(
        nodes: Callable[..., Awaitable[Node]], pg_url: str, how: str) -> None:
    """Taking and running are one transaction: nothing ran, nothing was published, the rows
    are back; the node tries again at its next sweep and each op runs once."""
    node = await nodes()
    for k in range(3):
        await node.registry.register("s1", DisconnectOp("default", "set", ("open", str(k)), INC, ALICE))
    await node.engine.set("default", ("open", "before"), 0, caller=ADMIN)  # the namespace is open
    seen: list[ChangeSet] = []
    node.engine.feed.subscribe("default", seen.append)
    assert isinstance(node.engine.writer, InProcessWriter)
    node.engine.writes = node.engine.writer.writes = FailingWrites(node.engine.access, how)
    with pytest.raises(Unavailable):
        await node.registry.take("s1")
    assert seen == [] and stored(pg_url) == 3
    assert await node.value("open") == {"before": 0}
    assert await node.registry.sweep() == 3  # the retry
    assert await node.value("open") == {"before": 0, **counted(3)}
    assert [c.base for c in seen] == [("open", str(k)) for k in range(3)]
    assert stored(pg_url) == 0 and await node.registry.sweep() == 0


# -- the lease -------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_node_past_its_lease_minus_the_margin_fences_once_and_refuses_writes(pg_url: str) -> None:
    clock = FakeClock()
    cluster = Cluster(pg_url, name="f", lease_s=10.0, clock=clock)
    fenced: list[str | None] = []
    cluster.on_fenced = lambda: fenced.append("fenced")
    await cluster.db.open()
    try:
        await cluster._register()
        first = cluster.node_id
        cluster.check_writable()
        clock.now += 7.9
        cluster.check_writable()  # 8 s = lease - margin: still trusted
        clock.now += 0.2
        with pytest.raises(Unavailable):
            cluster.check_writable()
        assert cluster.current() is None
        assert fenced == ["fenced"]
        await asyncio.sleep(0.1)  # the old row is expired in the background
        assert [(n, live) for n, _, live in await cluster.db.nodes()] == [(first, False)]
        await cluster._register()  # rejoins under a new id
        assert cluster.node_id not in (None, first)
        cluster.check_writable()
    finally:
        for task in cluster._tasks:
            await task
        await cluster.db.close()
