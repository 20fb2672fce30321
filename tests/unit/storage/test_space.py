"""Giving space back (rtdb/storage/space.py, files.py): incremental vacuum and WAL
checkpoints between groups, compaction, and deleting a namespace's files. Real SQLite
files in tmp_path; the policy's clock is a counter, never the wall clock."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.errors import Unavailable
from rtdb.core.value import normalize
from rtdb.storage.files import delete_files, hold
from rtdb.storage.space import SpacePolicy, auto_vacuum, compact_offline, enable_incremental_vacuum, file_bytes, wal_of
from rtdb.storage.sqlite import GroupWriter, Op, SqliteStore
from rtdb.storage.txn import SCHEMA, Txn

ITEMS = 6_000
TEXT = "x" * 400  # ~2.6 MB of leaves: well above the 1 MiB floor used below


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(**overrides: Any) -> SpacePolicy:
    base: dict[str, Any] = {"min_free_bytes": 256 * 1024, "idle_check_s": 1.0, "wal_truncate_bytes": 1024 * 1024}
    return SpacePolicy(**{**base, **overrides})


def items(start: int, stop: int, value: Any = TEXT) -> dict[str, Any]:
    return {f"k{i:06d}": value for i in range(start, stop)}


def write(writer: GroupWriter, fn: Any) -> None:
    op = Op(fn)
    assert writer.apply([op])
    assert op.error is None, op.error


def drain(writer: GroupWriter, clock: Clock, *, limit: int = 10_000) -> int:
    """Run the keeper's work as the idle writer thread would, jumping the clock over waits."""
    assert writer.space is not None
    steps = 0
    while (due := writer.space.due_in()) is not None:
        clock.now += due
        writer.maintain()
        steps += 1
        assert steps < limit
    return steps


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_writer(file: Path, clock: Clock, **overrides: Any) -> GroupWriter:
    writer = GroupWriter(file, synchronous="NORMAL", space=policy(**overrides))
    writer.open()
    assert writer.space is not None
    writer.space.clock = clock
    return writer


def test_a_new_namespace_file_gives_space_back_incrementally(tmp_path: Path, clock: Clock) -> None:
    writer = open_writer(tmp_path / "ns.sqlite", clock)
    try:
        conn = writer.txn.conn  # type: ignore[union-attr]
        assert auto_vacuum(conn) == "incremental"
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 1024 * 1024
    finally:
        writer.close()


def test_deleting_most_of_the_data_shrinks_the_file(tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock)
    try:
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        drain(writer, clock)
        full = os.path.getsize(file)
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS // 10))))  # 90 % deleted
        assert writer.space is not None and writer.space.due_in() == 0  # a big group: checked at once
        drain(writer, clock)
        assert writer.space.stats.pages_freed > 0
        assert writer.txn is not None and writer.txn.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert os.path.getsize(file) < full * 0.3, (os.path.getsize(file), full)
        assert os.path.getsize(wal_of(file)) == 0  # checkpointed and truncated after the vacuum run
        assert writer.txn.node(("items", "k000001")) == TEXT
        assert writer.txn.node(("items", f"k{ITEMS - 1:06d}")) is None
    finally:
        writer.close()


def test_small_deletions_are_left_for_later_writes_to_reuse(tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock, vacuum_free_percent=50)
    try:
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS * 3 // 4))))  # a quarter freed
        drain(writer, clock)
        assert writer.space is not None and writer.space.stats.checks >= 1
        assert writer.space.stats.pages_freed == 0
    finally:
        writer.close()


def test_a_steady_trickle_of_small_groups_is_checked_every_n_groups(tmp_path: Path, clock: Clock) -> None:
    writer = open_writer(tmp_path / "ns.sqlite", clock, check_every_groups=5)
    try:
        assert writer.space is not None
        for i in range(4):
            write(writer, lambda t, i=i: t.set(("n", str(i)), i))
            assert writer.space.busy is False
        write(writer, lambda t: t.set(("n", "4"), 4))
        assert writer.space.busy  # the fifth group asks for a check, idle or not
        writer.maintain()
        assert writer.space.stats.checks == 1 and not writer.space.busy
    finally:
        writer.close()


def test_an_idle_writer_checks_once_after_writing(tmp_path: Path, clock: Clock) -> None:
    writer = open_writer(tmp_path / "ns.sqlite", clock)
    try:
        assert writer.space is not None and writer.space.due_in() is None
        write(writer, lambda t: t.set(("a",), 1))
        assert writer.space.due_in() == 1.0
        clock.now += 1.0
        writer.maintain()
        assert writer.space.stats.checks == 1
        assert writer.space.due_in() is None  # nothing more until the next write
    finally:
        writer.close()


def test_the_wal_is_truncated_after_a_big_write(tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock)
    try:
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        assert os.path.getsize(wal_of(file)) > 1024 * 1024
        drain(writer, clock)
        assert writer.space is not None and writer.space.stats.checkpoints >= 1
        assert os.path.getsize(wal_of(file)) == 0
    finally:
        writer.close()


def test_a_reader_holding_an_old_snapshot_delays_the_truncation_without_blocking(tmp_path: Path,
                                                                                  clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock, checkpoint_busy_ms=1)
    reader = sqlite3.connect(file, isolation_level=None)
    try:
        write(writer, lambda t: t.set(("a",), 1))
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM nodes").fetchone()[0] > 0  # holds this snapshot
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        assert writer.space is not None
        writer.maintain()  # the check: the WAL is too big
        writer.maintain()  # the checkpoint: the reader still needs the WAL
        assert writer.space.stats.checkpoints_busy == 1
        assert os.path.getsize(wal_of(file)) > 1024 * 1024
        write(writer, lambda t: t.set(("b",), 2))  # writes go on meanwhile
        reader.execute("COMMIT")
        drain(writer, clock)  # tried again after a backoff, now with nobody in the way
        assert os.path.getsize(wal_of(file)) == 0
    finally:
        reader.close()
        writer.close()


def test_compaction_gives_back_every_free_page_whatever_the_threshold(tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock, vacuum_free_percent=0)  # never on its own
    try:
        write(writer, lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        write(writer, lambda t: t.set(("items",), None))
        drain(writer, clock)
        assert writer.space is not None and writer.space.stats.pages_freed == 0
        before = file_bytes(file)
        writer.request_compact("token")
        reports = []
        for _ in range(1000):
            reports += writer.maintain()
            clock.now += 1.0  # over any checkpoint backoff
            if reports:
                break
        [(token, report)] = reports
        assert token == "token"
        assert report.bytes_before == before and report.bytes_after < before / 4
        assert report.pages_freed > 0 and report.auto_vacuum == "incremental" and report.wal_truncated
        assert report.as_json()["bytesAfter"] == report.bytes_after
    finally:
        writer.close()


def _legacy_file(file: Path) -> None:
    """A file as rtdb wrote them before auto-vacuum: auto_vacuum=NONE."""
    conn = sqlite3.connect(file, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    txn = Txn(conn)
    conn.execute("BEGIN")
    txn.set(("items",), normalize(items(0, ITEMS)))
    conn.execute("COMMIT")
    conn.execute("BEGIN")
    txn.set(("items",), normalize(items(0, 100)))
    conn.execute("COMMIT")
    assert auto_vacuum(conn) == "none"
    conn.close()


def test_enable_incremental_vacuum_converts_a_file_written_without_it(tmp_path: Path) -> None:
    file = tmp_path / "old.sqlite"
    _legacy_file(file)
    conn = sqlite3.connect(file, isolation_level=None)
    try:
        assert enable_incremental_vacuum(conn) is True
        assert auto_vacuum(conn) == "incremental"
        assert enable_incremental_vacuum(conn) is False
        assert Txn(conn).node(("items", "k000099")) == TEXT
    finally:
        conn.close()


def test_offline_compaction_rewrites_a_file_written_without_auto_vacuum(tmp_path: Path) -> None:
    file = tmp_path / "old.sqlite"
    _legacy_file(file)
    conn = sqlite3.connect(file, isolation_level=None)
    try:
        report = compact_offline(conn, file)
        assert report.auto_vacuum == "none" and report.bytes_after < report.bytes_before / 4
        assert auto_vacuum(conn) == "incremental"
        assert Txn(conn).node(("items", "k000000")) == TEXT
    finally:
        conn.close()


def test_a_store_created_before_auto_vacuum_is_compacted_online_as_far_as_a_checkpoint_goes(
        tmp_path: Path) -> None:
    file = tmp_path / "old.sqlite"
    _legacy_file(file)

    async def run() -> Any:
        store = SqliteStore(file, synchronous="NORMAL")
        await store.open()
        try:
            return await store.compact()
        finally:
            await store.close()

    report = asyncio.run(run())
    assert report.auto_vacuum == "none" and report.pages_freed == 0


async def test_the_store_gives_space_back_on_its_own_while_idle(tmp_path: Path) -> None:
    file = tmp_path / "ns.sqlite"
    store = SqliteStore(file, synchronous="NORMAL", space=policy(idle_check_s=0.01))
    await store.open()
    try:
        await store.write(lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        await store.write(lambda t: t.set(("items",), None))
        assert store.space is not None
        deadline = time.monotonic() + 20
        while file_bytes(file) > 200_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert file_bytes(file) <= 200_000, file_bytes(file)
        assert store.space.stats.pages_freed > 0
        assert await store.read(lambda t: t.node(())) is None
    finally:
        await store.close()


async def test_writes_go_on_while_a_compaction_runs_in_steps(tmp_path: Path) -> None:
    file = tmp_path / "ns.sqlite"
    store = SqliteStore(file, synchronous="NORMAL", space=policy(vacuum_free_percent=0, step_pages=8))
    await store.open()
    try:
        await store.write(lambda t: t.set(("items",), normalize(items(0, ITEMS))))
        await store.write(lambda t: t.set(("items",), None))
        compaction = asyncio.ensure_future(store.compact())
        written = [await store.write(lambda t, i=i: t.set(("n", str(i)), i)) for i in range(20)]
        report = await compaction
        assert len(written) == 20 and report.pages_freed > 0
        assert store.space is not None and store.space.stats.vacuum_steps > 1  # in steps, not one long commit
        assert await store.read(lambda t: t.node(("n", "19"))) == 19
    finally:
        await store.close()


def test_deleting_a_namespace_waits_for_every_process_to_close_it(tmp_path: Path, clock: Clock) -> None:
    file = tmp_path / "ns.sqlite"
    writer = open_writer(file, clock)  # holds the namespace, as any open store does
    write(writer, lambda t: t.set(("a",), 1))
    with pytest.raises(Unavailable, match="still open"):
        delete_files(file, wait_s=0.01)
    assert file.exists()
    writer.close()
    freed = delete_files(file, wait_s=0.01)
    assert freed is not None and freed > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("ns.sqlite")]
    assert delete_files(file, wait_s=0.01) is None  # nothing left to drop


def test_nobody_opens_a_namespace_while_it_is_being_deleted(tmp_path: Path) -> None:
    file = tmp_path / "ns.sqlite"
    exclusive = hold(file, exclusive=True)
    try:
        with pytest.raises(Unavailable, match="being dropped"):
            hold(file, wait_s=0.01)
    finally:
        exclusive.release()
    hold(file, wait_s=0.01).release()
