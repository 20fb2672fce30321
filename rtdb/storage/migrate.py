"""Upgrading namespace files in place to the current row layout (:data:`rows.FORMAT`).

A file's ``PRAGMA user_version`` names its layout. Format 1 (before packing) kept one
row per node keyed by its full path, with the parent's path, the key and the depth
beside it. :func:`ensure_current` rewrites such a file in one transaction: the old
rows are read in path order (a depth-first walk) and fed to a :class:`~rows.Packer`,
so memory stays bounded by the depth times ``PACK_MAX``; a failure leaves the file as
it was. Then ``VACUUM`` gives the old table's space back. ``rtdb serve`` migrates every
file of its data dir before it serves (``rtdb migrate`` does the same offline), and a
store that opens an old file migrates it first.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path as FsPath

from rtdb.storage.rows import BOOLEAN, FORMAT, OBJECT, PAGE_SIZE, ROOT_KSORT, Packer, Row, leaf_row
from rtdb.storage.txn import SCHEMA, insert_sql

log = logging.getLogger("rtdb.storage.migrate")

NODES_V2 = SCHEMA[: SCHEMA.index(") WITHOUT ROWID;") + len(") WITHOUT ROWID;")]
_BATCH = 100


def file_format(conn: sqlite3.Connection) -> int:
    """The layout of the open file: ``FORMAT``, 1, or 0 for a file with no tables yet."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version:
        return int(version)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(nodes)")}
    if not columns:
        return 0
    return 1 if "path" in columns else FORMAT


def ensure_current(conn: sqlite3.Connection, name: str = "", progress: Callable[[int], None] | None = None,
                   *, exclusive: bool = False) -> bool:
    """Bring the file of ``conn`` (outside a transaction) to the current layout; ``True``
    if it was migrated. A new file is marked current. Safe against other processes
    opening the same file: the check is repeated under the write lock. ``exclusive``:
    nobody else has the file open, so the final ``VACUUM`` may also change its page size
    (which WAL mode forbids) to ``PAGE_SIZE``."""
    if file_format(conn) == FORMAT:
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = file_format(conn)
        if found == 0 or found == FORMAT:
            conn.execute(f"PRAGMA user_version = {FORMAT}")
            conn.execute("COMMIT")
            return False
        if found != 1:
            raise ValueError(f"namespace file {name or '?'} has an unknown format {found}")
        started = time.monotonic()
        count = _migrate_v1(conn, progress)
        conn.execute(f"PRAGMA user_version = {FORMAT}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect with the VACUUM: space comes back later too
    if exclusive:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("VACUUM")
    if exclusive:
        conn.execute("PRAGMA journal_mode=WAL")
    log.info("migrated %s to storage format %d: %d nodes in %.1f s", name or "a namespace", FORMAT, count,
             time.monotonic() - started)
    return True


def _migrate_v1(conn: sqlite3.Connection, progress: Callable[[int], None] | None) -> int:
    conn.execute("ALTER TABLE nodes RENAME TO nodes_v1")
    conn.execute(NODES_V2)
    pending: list[Row] = []

    def emit(row: Row) -> None:
        pending.append(row)
        if len(pending) >= _BATCH:
            flush()

    def flush() -> None:
        args = [v for row in pending for v in row]
        conn.execute(insert_sql(len(pending)), args)
        pending.clear()

    packer = Packer(emit)
    depth_open = 0  # objects open in the packer: the walk's depth
    count = 0
    old = conn.execute("SELECT depth, key, kind, value, priority FROM nodes_v1 ORDER BY path")
    for depth, key, kind, value, priority in old:
        count += 1
        if progress is not None and count % 100_000 == 0:
            progress(count)
        while depth_open > depth:
            packer.close()
            depth_open -= 1
        if kind == OBJECT:
            if depth == 0:
                packer.open("", "", priority, packable=False)
            else:
                packer.open(packer.stack[-1].path, key, priority)
            depth_open += 1
            continue
        leaf = bool(value) if kind == BOOLEAN else value
        if depth == 0:
            emit(leaf_row("", ROOT_KSORT, leaf, priority))
        else:
            packer.leaf(key, leaf, priority)
    while depth_open:
        packer.close()
        depth_open -= 1
    if pending:
        flush()
    conn.execute("DROP TABLE nodes_v1")
    return count


def migrate_dir(data_dir: FsPath, progress: Callable[[str, int], None] | None = None) -> list[str]:
    """Migrate every namespace file of ``data_dir`` (held by the caller: nobody else has
    them open); the names of those migrated."""
    done = []
    for file in sorted(data_dir.glob("*.sqlite")):
        conn = sqlite3.connect(file, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            name = file.stem
            step = (lambda n, name=name: progress(name, n)) if progress is not None else None
            if ensure_current(conn, name, step, exclusive=True):
                done.append(name)
        finally:
            conn.close()
    return done
