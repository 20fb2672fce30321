"""The embedded backend: one SQLite file per namespace in a data directory,
``<data_dir>/<namespace>.sqlite`` (:class:`~rtdb.storage.sqlite.SqliteStore`)."""

from __future__ import annotations

from pathlib import Path as FsPath

from rtdb.storage.sqlite import EmptyStore, SqliteStore

SUFFIX = ".sqlite"


class SqliteBackend:
    """Implements :class:`rtdb.storage.store.Backend` over a data directory."""

    def __init__(self, data_dir: FsPath, *, synchronous: str = "FULL") -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous

    def file(self, ns: str) -> FsPath:
        return self.data_dir / f"{ns}{SUFFIX}"

    def store(self, ns: str, *, writer: bool = True) -> SqliteStore:
        return SqliteStore(self.file(ns), synchronous=self.synchronous, writer=writer)

    def exists(self, ns: str) -> bool:
        return self.file(ns).exists()

    def namespaces(self) -> list[str]:
        try:
            return sorted(f.name[: -len(SUFFIX)] for f in self.data_dir.glob("*" + SUFFIX))
        except OSError:  # an unreadable data dir has none that can be listed
            return []

    def empty(self) -> EmptyStore:
        return EmptyStore()
