"""Optional SQLite persistence (``connect(..., cache_path=...)``).

Keeps what a restarted program needs to show data at once and lose no write:
the server cache as path-keyed rows (an overwrite at ``p`` replaces the rows at
and below ``p``; loading applies rows shallowest first), the paths whose default
listen had completed, and every write not yet acknowledged, in order.
Statements of one event-loop turn share one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path as FsPath
from typing import Any

import msgspec

from rtdb.core.path import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS server_cache (path TEXT PRIMARY KEY, depth INTEGER NOT NULL, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tracked (path TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, value BLOB NOT NULL);
"""
_SEP = "/"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

Schedule = Callable[[Callable[[], None]], object]


def _key(path: Path) -> str:
    return _SEP.join(path)


def _path(key: str) -> Path:
    return tuple(key.split(_SEP)) if key else ()


class Persistence:
    def __init__(self, file: str | FsPath, identity: str, schedule: Schedule) -> None:
        self._db = sqlite3.connect(str(file), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._schedule = schedule
        self._in_batch = False
        row = self._db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        if row is None or row[0] != identity:
            self._db.executescript("DELETE FROM server_cache; DELETE FROM tracked; DELETE FROM writes;")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (identity,))

    # -- loading --------------------------------------------------------------------------
    def load_cache(self) -> list[tuple[Path, Any]]:
        rows = self._db.execute("SELECT path, value FROM server_cache ORDER BY depth, path").fetchall()
        return [(_path(k), _decode(v)) for k, v in rows]

    def load_tracked(self) -> list[Path]:
        return [_path(k) for (k,) in self._db.execute("SELECT path FROM tracked ORDER BY path")]

    def load_writes(self) -> list[tuple[int, Path, str, Any]]:
        rows = self._db.execute("SELECT id, path, kind, value FROM writes ORDER BY id").fetchall()
        return [(i, _path(p), kind, _decode(v)) for i, p, kind, v in rows]

    # -- changes ---------------------------------------------------------------------------
    def _begin(self) -> sqlite3.Connection:
        if not self._in_batch:
            self._in_batch = True
            self._db.execute("BEGIN")
            self._schedule(self.flush)
        return self._db

    def flush(self) -> None:
        if self._in_batch:
            self._in_batch = False
            self._db.execute("COMMIT")

    def server_overwrite(self, path: Path, node: Any) -> None:
        db = self._begin()
        key = _key(path)
        if key:
            db.execute("DELETE FROM server_cache WHERE path > ? AND path < ?", (key + _SEP, key + chr(ord(_SEP) + 1)))
        else:
            db.execute("DELETE FROM server_cache")
        db.execute("INSERT OR REPLACE INTO server_cache VALUES (?, ?, ?)", (key, len(path), _encode(node)))

    def server_merge(self, path: Path, children: Mapping[Path, Any]) -> None:
        for rel, node in children.items():
            self.server_overwrite(path + rel, node)

    def track(self, path: Path) -> None:
        self._begin().execute("INSERT OR IGNORE INTO tracked VALUES (?)", (_key(path),))

    def add_write(self, write_id: int, path: Path, kind: str, data: Any) -> None:
        self._begin().execute("INSERT INTO writes VALUES (?, ?, ?, ?)", (write_id, _key(path), kind, _encode(data)))

    def remove_write(self, write_id: int) -> None:
        self._begin().execute("DELETE FROM writes WHERE id = ?", (write_id,))

    def compact(self, root: Any) -> None:
        """Replace every cache row by one root row (after a load that found many)."""
        db = self._begin()
        db.execute("DELETE FROM server_cache")
        db.execute("INSERT INTO server_cache VALUES ('', 0, ?)", (_encode(root),))

    def close(self) -> None:
        self.flush()
        self._db.close()
