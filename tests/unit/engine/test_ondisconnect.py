"""onDisconnect registries: the in-memory one (one node, SQLite: behaviour as before) and the
durable one in PostgreSQL (exactly one taker per operation, sweeps of expired nodes, takeovers
refused to other callers), and running taken operations as their callers, rules re-checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rtdb.core.auth import ADMIN, ANONYMOUS, Caller
from rtdb.core.errors import Unavailable
from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.cluster import Cluster
from rtdb.engine.engine import Engine
from rtdb.engine.ondisconnect import DisconnectOp, MemoryRegistry, PostgresRegistry, run_ops
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
    assert await registry.sweep() == []


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
    assert await run_ops(engine, ops) == 2
    assert await engine.get("default", ("presence", "alice"), caller=ADMIN) == {"online": False, "n": 2}


async def test_rules_are_checked_again_when_an_op_runs(engine: Engine) -> None:
    """Registered as alice (allowed then); run as alice: a write to bob's place is refused and
    skipped, the ops after it still run."""
    ops = [DisconnectOp("default", "set", ("presence", "bob"), "offline", ALICE),
           DisconnectOp("default", "set", ("presence", "alice"), "offline", ALICE),
           DisconnectOp("default", "set", ("presence", "carol"), "offline", ANONYMOUS)]
    assert await run_ops(engine, ops) == 1
    assert await engine.get("default", ("presence",), caller=ADMIN) == {"alice": "offline"}


# -- in PostgreSQL ----------------------------------------------------------------------
class Node:
    """A node of the test cluster: its own connections and lease (no background tasks unless
    started)."""

    def __init__(self, url: str, lease_s: float = 10.0) -> None:
        self.cluster = Cluster(url, name="t", lease_s=lease_s)
        self.registry: PostgresRegistry = self.cluster.registry

    async def join(self) -> Node:
        await self.cluster.db.open()
        await self.cluster._register()
        return self

    async def leave(self) -> None:
        await self.cluster.db.close()


@pytest.fixture
def pg_url() -> object:
    from unit.storage.pg_service import fresh_url

    with fresh_url() as url:
        yield url


async def test_pg_register_cancel_take_in_order_once(pg_url: str) -> None:
    node = await Node(pg_url).join()
    try:
        for op in OPS:
            await node.registry.register("s1", op)
        await node.registry.register("s2", OPS[0])
        assert await node.registry.cancel("s1", ("presence", "dave")) == 2
        assert await node.registry.take("s1") == OPS[:3]
        assert await node.registry.take("s1") == []
        assert await node.registry.take("s2") == [OPS[0]]
    finally:
        await node.leave()


async def test_pg_values_and_callers_round_trip(pg_url: str) -> None:
    node = await Node(pg_url).join()
    caller = Caller(auth={"uid": "ü", "token": {"n": 2**60}}, expires_at_ms=123)
    op = DisconnectOp("ns-1", "update", ("a", "b"), {"x/y": {"nul": "a\u0000b", "f": 1.5, "big": 2**60}}, caller)
    try:
        await node.registry.register("s1", op)
        assert await node.registry.take("s1") == [op]
    finally:
        await node.leave()


async def test_pg_each_op_is_taken_by_exactly_one_of_two_concurrent_claimers(pg_url: str) -> None:
    a, b = await Node(pg_url).join(), await Node(pg_url).join()
    try:
        sessions = [f"s{i}" for i in range(40)]
        for i, session in enumerate(sessions):
            for k in range(3):
                await a.registry.register(session, DisconnectOp("default", "set", ("p", str(i), str(k)), k, ALICE))
        taken = await asyncio.gather(*[node.registry.take(s) if node is a else
                                       node.registry.takeover(s, lambda caller: True)
                                       for s in sessions for node in (a, b)])
        for i in range(len(sessions)):
            first, second = taken[2 * i], taken[2 * i + 1]
            assert first is not None and second is not None
            assert sorted([len(first), len(second)]) == [0, 3]  # all of a session's ops, to one claimer
            assert [op.data for op in first or second] == [0, 1, 2]
    finally:
        await a.leave()
        await b.leave()


async def test_pg_takeover_is_refused_to_another_caller_and_leaves_the_ops(pg_url: str) -> None:
    a, b = await Node(pg_url).join(), await Node(pg_url).join()
    try:
        await a.registry.register("s1", OPS[0])
        assert await b.registry.takeover("s1", lambda caller: caller == BOB) is None
        assert await b.registry.takeover("s1", lambda caller: caller == ALICE) == [OPS[0]]
        assert await a.registry.take("s1") == []  # the old node's close later finds nothing
        assert await b.registry.takeover("s1", lambda caller: True) == []
    finally:
        await a.leave()
        await b.leave()


async def test_pg_an_expired_node_is_swept_once_and_registers_nothing_more(pg_url: str) -> None:
    dead, alive = await Node(pg_url, lease_s=0.5).join(), await Node(pg_url).join()
    other = await Node(pg_url).join()
    try:
        await dead.registry.register("s1", OPS[0])
        await dead.registry.register("s2", OPS[1])
        await alive.registry.register("s3", OPS[2])
        await asyncio.sleep(0.7)
        with pytest.raises(Unavailable):  # fenced by its own clock: registers nothing
            await dead.registry.register("s1", OPS[3])
        assert await dead.registry.take("s1") == []  # ... and takes nothing: the sweeper will
        await asyncio.gather(*dead.cluster._tasks)  # it expires its row (a sweeper skips a row locked meanwhile)
        swept = await asyncio.gather(alive.registry.sweep(), other.registry.sweep())
        assert sorted(map(len, swept)) == [0, 2]
        assert sorted(swept[0] + swept[1], key=lambda op: op.path) == [OPS[0], OPS[1]]
        assert await alive.registry.sweep() == []
        nodes = await alive.cluster.db.nodes()
        assert [n[0] for n in nodes] == sorted([alive.cluster.node_id, other.cluster.node_id])
        assert await alive.registry.take("s3") == [OPS[2]]  # a live node's sessions are not swept
    finally:
        for node in (dead, alive, other):
            await node.leave()


async def test_pg_a_node_whose_lease_ran_out_in_postgresql_stores_nothing(pg_url: str) -> None:
    """Even when the node's own clock has not noticed yet (the INSERT checks the lease)."""
    node = await Node(pg_url).join()
    try:
        assert node.cluster.node_id is not None
        await node.cluster.db.expire(node.cluster.node_id)
        with pytest.raises(Unavailable):
            await node.registry.register("s1", OPS[0])
        assert await node.registry.take("s1") == []
    finally:
        await node.leave()


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
