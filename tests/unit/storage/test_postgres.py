"""What only the PostgreSQL store has to get right (the store protocol itself runs against
it in test_store.py): the collation of its keys, values round-tripped exactly through json
cells, a 64-bit seq, one gapless commit order when several stores write one namespace, the
primary key used through the views, and `Unavailable` when the server cannot be reached."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from unit.storage.pg_service import fresh_schema, url_for

from rtdb.core.errors import Unavailable
from rtdb.core.query import QuerySpec
from rtdb.core.value import children, normalize
from rtdb.storage.txn import Txn

psycopg = pytest.importorskip("psycopg")

from rtdb.storage.postgres import PgStore, PostgresBackend  # noqa: E402


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def backend(schema: str) -> Iterator[PostgresBackend]:
    made = PostgresBackend(url_for(schema))
    yield made
    made.close()


@pytest.fixture
async def store(backend: PostgresBackend) -> AsyncIterator[PgStore]:
    s = backend.store("ns")
    await s.open()
    yield s
    await s.close()


def sql(schema: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url_for(schema), autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


async def test_every_text_key_column_sorts_by_code_point(store: PgStore, schema: str) -> None:
    found = sql(schema, "SELECT table_name, column_name, collation_name FROM information_schema.columns "
                        "WHERE table_schema = %s AND data_type = 'text' AND table_name LIKE 'rtdb_%%' "
                        "AND column_name <> 'epoch'", schema)
    assert {(t, c) for t, c, _ in found} >= {
        ("rtdb_nodes", "parent"), ("rtdb_index_entries", "parent"), ("rtdb_index_entries", "key"),
        ("rtdb_meta", "name"), ("rtdb_namespaces", "name"), ("rtdb_index_defs", "pattern"),
    }
    assert {collation for _, _, collation in found} == {"C"}


async def test_a_subtree_range_excludes_siblings_whatever_the_database_collation(store: PgStore) -> None:
    # "a" < "a\x01…" < "a\x02" < "a " < "a!" < "a0" in code points; a linguistic collation ignores the controls
    await store.write(lambda t: t.set(("a",), normalize({f"k{i}": {"x": "y" * 200} for i in range(20)})))
    for sibling in ("a ", "a!", "a0", "a\u00e9"):
        await store.write(lambda t, s=sibling: t.set((s,), 1))
    node = await store.read(lambda t: t.node(("a",)))
    assert sorted(children(node)) == sorted(f"k{i}" for i in range(20))
    await store.write(lambda t: t.set(("a",), None))
    assert await store.read(lambda t: t.node(())) == {"a ": 1, "a!": 1, "a0": 1, "a\u00e9": 1}


VALUES = [
    "nul\x00inside", "\x00", "", "x" * 50_000, "emoji \U0001F600 and \u00e9",
    2**53 + 1, -(2**63), 2**63 - 1, 1, 1.0, -0.0, 0.1, 1e300, -2.5e-300,
    True, False,
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
async def test_a_leaf_round_trips_exactly(store: PgStore, value: Any) -> None:
    await store.write(lambda t: t.set(("leaf",), value))
    got = await store.read(lambda t: t.node(("leaf",)))
    assert type(got) is type(value) and got == value
    if isinstance(value, float):
        assert str(got) == str(value)  # -0.0 stays negative


async def test_values_and_keys_round_trip_inside_packed_rows_and_priorities(store: PgStore) -> None:
    value = normalize({
        "small": {"nul": "a\x00b", "big": 2**60, "one": 1, "onef": 1.0, "t": True, "k\u00e9": "\U0001F600"},
        "prio": {".value": "v", ".priority": 2**40},
        "sprio": {".priority": "p\x00q", "c": 1},
        "large": {f"k{i}": "v\x00" * 30 for i in range(100)},
    })
    await store.write(lambda t: t.set(("root",), value))
    got = await store.read(lambda t: t.node(("root",)))
    assert got == value
    kinds = ("one", "onef", "big")
    assert [type(got["small"][k]) for k in kinds] == [type(value["small"][k]) for k in kinds]
    raw = await store.read(lambda t: t.node(("root", "small"), plain=True, raw=True))
    assert isinstance(raw, msgspec.Raw) and msgspec.json.decode(raw) == value["small"]


async def test_meta_values_round_trip(store: PgStore) -> None:
    rules = '{"rules": {".read": "auth != null" /* \x00 */}}'
    await store.write(lambda t: t.set_meta("rules", rules))
    assert await store.read(lambda t: t.meta("rules")) == rules
    assert await store.read(lambda t: t.meta("missing")) is None


async def test_the_seq_goes_past_two_to_the_31(store: PgStore, schema: str) -> None:
    sql(schema, "UPDATE rtdb_namespaces SET seq = %s WHERE name = 'ns'", 2**31 + 5)
    seq = await store.write(lambda t: t.next_seq())  # the group's lock reads the stored seq
    assert seq == 2**31 + 6
    assert await store.read(lambda t: t.committed_seq()) == 2**31 + 6
    await store.write(lambda t: t.log_change(t.next_seq(), b"c"))
    assert await store.read(lambda t: t.changes_after(2**31 + 6)) == [b"c"]


async def test_two_stores_writing_one_namespace_get_one_gapless_order(backend: PostgresBackend,
                                                                      schema: str) -> None:
    """Two writers (two connections, as two nodes would have) interleave groups on one namespace:
    the row lock makes their seqs exactly 1..N, each logged once."""
    other = PostgresBackend(url_for(schema))
    a, b = backend.store("shared"), other.store("shared")
    await a.open()
    await b.open()
    n = 300

    def op(store_name: str, i: int) -> Any:
        def fn(t: Txn) -> int:
            old = t.node(("count",)) or 0
            t.set(("count",), old + 1)
            t.set(("by", store_name, str(i)), i)
            seq = t.next_seq()
            t.log_change(seq, f"{store_name}{i}".encode())
            return seq

        return fn

    try:
        seqs = await asyncio.gather(*[s.write(op(name, i)) for i in range(n) for name, s in (("a", a), ("b", b))])
        assert sorted(seqs) == list(range(1, 2 * n + 1))
        assert await a.read(lambda t: t.node(("count",))) == 2 * n
        assert await a.read(lambda t: t.committed_seq()) == 2 * n
        logged = await b.read(lambda t: t.changes_after(0, limit=10 * n))
        assert sorted(logged) == sorted(f"{name}{i}".encode() for i in range(n) for name in "ab")
    finally:
        await a.close()
        await b.close()
        other.close()


async def test_views_look_rows_up_by_the_primary_key(store: PgStore, schema: str) -> None:
    await store.write(lambda t: t.set(("users",), normalize({f"u{i}": {"age": i} for i in range(500)})))
    with psycopg.connect(url_for(schema), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # the tables are tiny: ask whether an index *can* serve it
        (ns_id,) = conn.execute("SELECT ns_id FROM rtdb_namespaces WHERE name = 'ns'").fetchone()
        conn.execute("SELECT set_config('rtdb.ns', %s, false)", (str(ns_id),))
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT kind, value FROM nodes WHERE parent = 'users' AND ksort = '\\x01753132'::bytea"))
    assert "rtdb_nodes_pkey" in plan and "ns_id =" in plan, plan


async def test_another_stores_index_is_maintained_and_found(backend: PostgresBackend, schema: str) -> None:
    other = PostgresBackend(url_for(schema))
    a, b = backend.store("ix"), other.store("ix")
    await a.open()
    await b.open()
    try:
        await b.write(lambda t: t.set(("users", "u0"), {"age": 50}))  # b's writer has read the index version
        await a.write(lambda t: t.declare_index(("users",), ("age",)))
        await b.write(lambda t: t.set(("users", "u1"), {"age": 7}))  # b maintains the index a declared
        spec = QuerySpec("child", ("age",))
        assert await b.read(lambda t: t.query_keys(("users",), spec, t.find_index(("users",), spec))) == ["u1", "u0"]
    finally:
        await a.close()
        await b.close()
        other.close()


async def test_namespaces_exist_once_opened_and_drop_deletes_only_theirs(backend: PostgresBackend) -> None:
    assert not backend.exists("one") and backend.namespaces() == []
    one, two = backend.store("one"), backend.store("two")
    await one.open()
    await two.open()
    await one.write(lambda t: t.set(("a",), {"b": "x" * 100}))
    await two.write(lambda t: t.set(("a",), 2))
    await one.close()
    await two.close()
    assert backend.namespaces() == ["one", "two"] and backend.exists("one")
    freed = await asyncio.to_thread(backend.drop, "one")
    assert freed is not None and freed > 100
    assert backend.drop("one") is None
    assert backend.namespaces() == ["two"]
    again = backend.store("two")
    await again.open()
    try:
        assert await again.read(lambda t: t.node(())) == {"a": 2}
    finally:
        await again.close()


async def test_compact_vacuums_and_reports_table_sizes(store: PgStore) -> None:
    await store.write(lambda t: t.set(("a",), normalize({f"k{i}": "x" * 100 for i in range(200)})))
    await store.write(lambda t: t.set(("a",), None))
    report = await store.compact()
    assert report.bytes_before > 0 and report.bytes_after > 0 and report.auto_vacuum == "postgresql"


async def test_an_unreachable_server_fails_reads_and_writes_with_unavailable() -> None:
    from rtdb.storage import postgres

    free = "postgresql://root@127.0.0.1:1/test"  # nothing listens on port 1
    backend = PostgresBackend(free)
    postgres_timeout = postgres.POOL_TIMEOUT_S
    postgres.POOL_TIMEOUT_S = 0.5
    try:
        with pytest.raises(Unavailable, match="PostgreSQL"):
            backend.exists("ns")
        s = backend.store("ns")
        with pytest.raises(Unavailable, match="PostgreSQL"):
            await s.open()
    finally:
        postgres.POOL_TIMEOUT_S = postgres_timeout
        backend.close()


async def test_a_connection_lost_mid_run_fails_the_write_then_the_writer_reconnects(store: PgStore,
                                                                                   schema: str) -> None:
    await store.write(lambda t: t.set(("a",), 1))
    sql(schema, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%%FOR UPDATE%%'")
    results = []
    for i in range(3):  # the first may fail (its connection was killed); the writer then reconnects
        try:
            await store.write(lambda t, i=i: t.set(("b", str(i)), i))
            results.append("ok")
        except Unavailable:
            results.append("unavailable")
    assert results[-1] == "ok" and set(results) <= {"ok", "unavailable"}
    node = await store.read(lambda t: t.node(("b",)))
    assert set(children(node)) == {str(i) for i, r in enumerate(results) if r == "ok"}, "no false ack"


def test_a_url_without_a_search_path_gets_the_rtdb_schema_and_an_explicit_one_is_kept() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from rtdb.storage.pg_schema import with_schema

    assert conninfo_to_dict(with_schema("postgresql://u@h:5432/d"))["options"] == "-csearch_path=rtdb"
    assert conninfo_to_dict(with_schema("host=h dbname=d options='-cwork_mem=8MB'"))["options"] == (
        "-cwork_mem=8MB -csearch_path=rtdb")
    explicit = url_for("mine")
    assert with_schema(explicit) == explicit


async def test_a_database_given_without_a_schema_keeps_rtdb_out_of_public() -> None:
    from unit.storage.pg_service import BASE_URL, require

    require()
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    database = f"rtdb_test_{secrets.token_hex(6)}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = make_conninfo(**{**conninfo_to_dict(BASE_URL), "dbname": database})
    try:
        backend = PostgresBackend(url)
        s = backend.store("ns")
        await s.open()
        await s.write(lambda t: t.set(("a",), 1))
        assert await s.read(lambda t: t.node(())) == {"a": 1}
        await s.close()
        backend.close()
        with psycopg.connect(url, autocommit=True) as conn:
            where = dict(conn.execute("SELECT table_name, table_schema FROM information_schema.tables "
                                      "WHERE table_name IN ('rtdb_nodes', 'nodes')").fetchall())
        assert where == {"rtdb_nodes": "rtdb", "nodes": "rtdb"}
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def test_many_open_namespaces_share_a_few_write_connections(schema: str) -> None:
    backend = PostgresBackend(url_for(schema), write_pool_size=2)
    stores = [backend.store(f"ns{i}") for i in range(12)]
    try:
        for s in stores:
            await s.open()
        await asyncio.gather(*(s.write(lambda t, i=i, k=k: t.set(("k", str(k)), i))
                               for i, s in enumerate(stores) for k in range(20)))
        for i, s in enumerate(stores):
            assert await s.read(lambda t: t.node(("k",))) == {str(k): i for k in range(20)}
        stats = backend.writers().get_stats()
        assert stats["pool_size"] <= 2, stats
        assert stats["requests_num"] >= 12  # a connection was borrowed for each namespace's groups
    finally:
        for s in stores:
            await s.close()
        backend.close()
