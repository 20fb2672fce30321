"""The embedded backend: one SQLite file per namespace in a data directory,
``<data_dir>/<namespace>.sqlite`` (:class:`~rtdb.storage.sqlite.SqliteStore`)."""

from __future__ import annotations

from pathlib import Path as FsPath

from rtdb.storage.files import delete_files
from rtdb.storage.space import SpacePolicy
from rtdb.storage.sqlite import EmptyStore, SqliteStore

SUFFIX = ".sqlite"


class SqliteBackend:
    """Implements :class:`rtdb.storage.store.Backend` over a data directory."""

    def __init__(self, data_dir: FsPath, *, synchronous: str = "FULL", space: SpacePolicy | None = None) -> None:
        self.data_dir = data_dir
        self.synchronous = synchronous
        self.space = space

    def file(self, ns: str) -> FsPath:
        return self.data_dir / f"{ns}{SUFFIX}"

    def store(self, ns: str, *, writer: bool = True) -> SqliteStore:
        return SqliteStore(self.file(ns), synchronous=self.synchronous, writer=writer, space=self.space)

    def exists(self, ns: str) -> bool:
        return self.file(ns).exists()

    def drop(self, ns: str) -> int | None:
        """Delete the namespace's files (:func:`rtdb.storage.files.delete_files`)."""
        return delete_files(self.file(ns))

    def namespaces(self) -> list[str]:
        try:
            return sorted(f.name[: -len(SUFFIX)] for f in self.data_dir.glob("*" + SUFFIX))
        except OSError:  # an unreadable data dir has none that can be listed
            return []

    def empty(self) -> EmptyStore:
        return EmptyStore()
