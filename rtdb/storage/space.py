"""Giving disk space back: incremental vacuum and WAL checkpoints between write groups,
and compaction on demand.

Namespace files are created with ``auto_vacuum=INCREMENTAL`` (:func:`prepare`, run by
every connection before it touches the file): deleted data leaves whole pages on
SQLite's freelist, and ``PRAGMA incremental_vacuum(N)`` moves N pages from the end of
the file into those holes and truncates the file. A :class:`SpaceKeeper` decides,
for one write connection, when to do that and when to checkpoint the WAL; the writer
(the store's writer thread, or the writer process) calls :meth:`SpaceKeeper.step`
between groups, so each piece of work is short (``step_pages`` pages, one small
commit) and writes never wait long behind it:

* after a group that changed many rows, every ``check_every_groups`` groups, and when
  the writer has been idle ``idle_check_s`` after writing, it *checks*: the freelist
  (``PRAGMA freelist_count``, read from the header page, cheap) against
  ``vacuum_free_percent`` of the file, and the WAL's size against ``wal_truncate_bytes``;
* free pages above the threshold are vacuumed ``step_pages`` at a time;
* a WAL above its threshold, or after a vacuum run, is checkpointed with
  ``wal_checkpoint(TRUNCATE)`` under a short busy timeout: if readers hold old
  snapshots it copies what it can (as a passive checkpoint does) and is tried again
  later with backoff, so neither readers nor writers wait more than that timeout.

``journal_size_limit`` is set too, so a WAL that SQLite restarts on its own is cut back
to that size. Files created before auto-vacuum (``auto_vacuum=NONE``) only shrink by a
full ``VACUUM``: :func:`enable_incremental_vacuum` (the migration, ``rtdb namespace
compact`` offline) converts them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from rtdb.storage.store import CompactReport

log = logging.getLogger("rtdb.storage.space")


AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}
CHECKPOINT_TRIES = 8


@dataclass(frozen=True, slots=True)
class SpacePolicy:
    """When a namespace's writer gives space back (``rtdb serve --vacuum-free-percent``,
    ``--wal-truncate-mb``; the rest are fixed)."""

    vacuum_free_percent: int = 10
    """Free pages above this share of the file are given back (0: never automatically)."""
    min_free_bytes: int = 4 * 1024 * 1024
    """... and only once they add up to this much."""
    wal_truncate_bytes: int = 64 * 1024 * 1024
    """A WAL above this is checkpointed and truncated; also SQLite's ``journal_size_limit``."""
    step_pages: int = 64
    """Pages per vacuum step: one short commit between groups."""
    check_every_groups: int = 64
    big_group_rows: int = 1000
    """A group that changed this many rows is followed by a check."""
    idle_check_s: float = 1.0
    busy_step_every: int = 8
    """While writes keep coming, one step of pending work after every this many groups."""
    checkpoint_busy_ms: int = 100
    """How long a checkpoint waits for readers (and other processes' writers) at most."""


def prepare(conn: sqlite3.Connection, policy: SpacePolicy | None = None) -> None:
    """Per connection, before anything else touches the file: a new file is created with
    incremental auto-vacuum (it must be set before the first table, and before the switch
    to WAL writes the header). On an existing file it changes nothing until a ``VACUUM``
    on this connection (which then converts the file)."""
    limit = (policy or SpacePolicy()).wal_truncate_bytes
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute(f"PRAGMA journal_size_limit={int(limit)}")


def auto_vacuum(conn: sqlite3.Connection) -> str:
    """The file's mode: ``none``, ``full`` or ``incremental``."""
    return AUTO_VACUUM_MODES.get(conn.execute("PRAGMA auto_vacuum").fetchone()[0], "none")


def enable_incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Convert the file of ``conn`` (outside a transaction) to incremental auto-vacuum;
    ``True`` if it had to be rewritten. A file with ``auto_vacuum=NONE`` is rewritten by
    ``VACUUM``: it needs the file to itself for the duration (no other writer; readers of
    other connections wait) and free disk space about its size."""
    if auto_vacuum(conn) == "incremental":
        return False
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    if auto_vacuum(conn) != "incremental":  # none -> incremental takes a VACUUM (full -> incremental does not)
        conn.execute("VACUUM")
    return True


def file_bytes(file: FsPath) -> int:
    """Bytes the namespace takes on disk: the database file and its WAL."""
    total = 0
    for path in (file, wal_of(file)):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total


def wal_of(file: FsPath) -> FsPath:
    return file.with_name(file.name + "-wal")


def vacuum_step(conn: sqlite3.Connection, pages: int) -> None:
    """Give back up to ``pages`` free pages in one commit. (``execute`` would stop after the
    first page: the statement returns no rows, so the cursor resets it after one step.)"""
    conn.executescript(f"PRAGMA incremental_vacuum({int(pages)})")


def checkpoint(conn: sqlite3.Connection, busy_ms: int, *, restore_busy_ms: int) -> bool:
    """``wal_checkpoint(TRUNCATE)`` waiting at most ``busy_ms`` for readers and writers;
    ``True`` if the WAL was emptied and truncated."""
    conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(restore_busy_ms)}")
    return bool(busy == 0)


@dataclass
class SpaceStats:
    checks: int = 0
    vacuum_steps: int = 0
    pages_freed: int = 0
    checkpoints: int = 0
    checkpoints_busy: int = 0
    compactions: int = 0


@dataclass
class _Compaction:
    token: Any
    bytes_before: int
    pages_freed_before: int
    wal_truncated: bool = False


@dataclass
class SpaceKeeper:
    """The vacuum and checkpoint policy of one write connection, as a small state machine
    driven by its writer: :meth:`committed` after each group, :meth:`due_in` to know
    whether (or when) there is work, :meth:`step` to do one bounded piece of it."""

    file: FsPath
    mode: str
    page_size: int
    policy: SpacePolicy = field(default_factory=SpacePolicy)
    clock: Callable[[], float] = time.monotonic
    busy_timeout_ms: int = 10_000
    stats: SpaceStats = field(default_factory=SpaceStats)
    _groups: int = 0
    _last_group: float = 0.0
    _check_now: bool = False
    _vacuum_left: int = 0
    _checkpoint_at: float | None = None
    _checkpoint_tries: int = 0
    _compactions: list[_Compaction] = field(default_factory=list)

    @classmethod
    def of(cls, conn: sqlite3.Connection, file: FsPath, policy: SpacePolicy | None = None,
           **kwargs: Any) -> SpaceKeeper:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        return cls(file, auto_vacuum(conn), page_size, policy or SpacePolicy(), **kwargs)

    # -- what the writer tells it -------------------------------------------------------
    def committed(self, changes: int) -> None:
        """A group committed, having changed ``changes`` rows."""
        self._groups += 1
        self._last_group = self.clock()
        if changes >= self.policy.big_group_rows or self._groups >= self.policy.check_every_groups:
            self._check_now = True

    def request_compact(self, token: Any, conn: sqlite3.Connection) -> None:
        """Vacuum every free page and truncate the WAL now; :meth:`step` hands back
        ``(token, CompactReport)`` once done."""
        self._compactions.append(_Compaction(token, file_bytes(self.file), self.stats.pages_freed))
        if self.mode == "incremental":
            self._vacuum_left = max(self._vacuum_left, _freelist(conn))
        self._want_checkpoint(fresh=True)

    def abandon(self) -> list[Any]:
        """The writer stops: the tokens of compactions that will not finish."""
        tokens = [c.token for c in self._compactions]
        self._compactions.clear()
        return tokens

    # -- when ----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether work is due now (a vacuum run, a check, a checkpoint, a compaction)."""
        if self._vacuum_left > 0 or self._check_now or self._compactions:
            return True
        return self._checkpoint_at is not None and self._checkpoint_at <= self.clock()

    def due_in(self) -> float | None:
        """Seconds until :meth:`step` has something to do (0: now), ``None``: nothing until
        the next commit."""
        if self._vacuum_left > 0 or self._check_now:
            return 0.0
        now = self.clock()
        due: list[float] = []
        if self._checkpoint_at is not None:
            due.append(max(0.0, self._checkpoint_at - now))
        elif self._compactions:
            return 0.0
        if self._groups:
            due.append(max(0.0, self._last_group + self.policy.idle_check_s - now))
        return min(due) if due else None

    # -- doing it ------------------------------------------------------------------------
    def step(self, conn: sqlite3.Connection) -> list[tuple[Any, CompactReport]]:
        """One bounded piece of due work on ``conn`` (outside a transaction); returns the
        compactions that finished."""
        now = self.clock()
        if self._vacuum_left > 0:
            pages = min(self._vacuum_left, self.policy.step_pages)
            vacuum_step(conn, pages)
            self._vacuum_left -= pages
            self.stats.vacuum_steps += 1
            self.stats.pages_freed += pages
            if self._vacuum_left == 0:
                self._vacuum_left = self._leftover(conn)
                if self._vacuum_left == 0:
                    self._want_checkpoint(fresh=True)  # the file shrinks when the WAL is copied back
            return []
        if self._checkpoint_at is not None and self._checkpoint_at <= now:
            self._try_checkpoint(conn)
            return self._finished(conn)
        if self._check_now or (self._groups and self._last_group + self.policy.idle_check_s <= now):
            self._check(conn)
            return []
        return self._finished(conn)

    def _check(self, conn: sqlite3.Connection) -> None:
        self._groups = 0
        self._check_now = False
        self.stats.checks += 1
        if self.mode == "incremental" and self.policy.vacuum_free_percent > 0:
            free = _freelist(conn)
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            threshold = max(self.policy.min_free_bytes // self.page_size, pages * self.policy.vacuum_free_percent / 100)
            if free and free >= threshold:
                log.debug("%s: %d of %d pages free; giving them back", self.file.name, free, pages)
                self._vacuum_left = free
                return
        if _size(wal_of(self.file)) > self.policy.wal_truncate_bytes:
            self._want_checkpoint(fresh=False)

    def _leftover(self, conn: sqlite3.Connection) -> int:
        """After a vacuum run (or compaction): pages freed meanwhile by other processes' writes."""
        return _freelist(conn) if self._compactions and self.mode == "incremental" else 0

    def _want_checkpoint(self, *, fresh: bool) -> None:
        if fresh or self._checkpoint_at is None:
            self._checkpoint_tries = 0
        if self._checkpoint_at is None:
            self._checkpoint_at = self.clock()

    def _try_checkpoint(self, conn: sqlite3.Connection) -> None:
        self.stats.checkpoints += 1
        if checkpoint(conn, self.policy.checkpoint_busy_ms, restore_busy_ms=self.busy_timeout_ms):
            self._checkpoint_at = None
            for compaction in self._compactions:
                compaction.wal_truncated = True
            return
        self.stats.checkpoints_busy += 1
        self._checkpoint_tries += 1
        if self._checkpoint_tries >= CHECKPOINT_TRIES:
            log.info("%s: readers kept the WAL from being truncated; trying again after later writes", self.file.name)
            self._checkpoint_at = None
            return
        self._checkpoint_at = self.clock() + min(0.05 * 2 ** self._checkpoint_tries, 2.0)

    def _finished(self, conn: sqlite3.Connection) -> list[tuple[Any, CompactReport]]:
        if not self._compactions or self._vacuum_left or self._checkpoint_at is not None:
            return []
        after = file_bytes(self.file)
        done = [(c.token, CompactReport(c.bytes_before, after, self.stats.pages_freed - c.pages_freed_before,
                                        self.mode, c.wal_truncated)) for c in self._compactions]
        self._compactions.clear()
        self.stats.compactions += len(done)
        return done


def _freelist(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def _size(path: FsPath) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def compact_offline(conn: sqlite3.Connection, file: FsPath, *, full: bool = False) -> CompactReport:
    """Compact a file nobody else has open: every free page given back and the WAL
    truncated; with ``full``, or when the file has ``auto_vacuum=NONE``, a ``VACUUM``
    rewrites it (converting it to incremental auto-vacuum)."""
    before = file_bytes(file)
    mode = auto_vacuum(conn)
    freed = _freelist(conn)
    if full or mode != "incremental":
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
    elif freed:
        vacuum_step(conn, freed)
    truncated = checkpoint(conn, 10_000, restore_busy_ms=10_000)
    return CompactReport(before, file_bytes(file), freed, mode, truncated)


def compact_file(file: FsPath, *, full: bool = False) -> CompactReport:
    """:func:`compact_offline` on a namespace file that no server has open (``rtdb namespace
    compact``)."""
    conn = sqlite3.connect(file, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        prepare(conn)
        return compact_offline(conn, file, full=full)
    finally:
        conn.close()
