"""The storage seam: what the engine, the rules' data access and the tools need of a store,
whatever keeps the data (SQLite files today: :mod:`rtdb.storage.sqlite`; a PostgreSQL store
implements the same protocols).

* :class:`Txn` — node-level reads and writes inside one transaction (a consistent
  snapshot for reads; for writes, part of a group that commits together).
* :class:`Store` — one namespace: ``read(fn)`` runs ``fn(txn)`` in a read transaction,
  ``write(fn)`` runs it in the next group commit and returns once that committed;
  ``on_commit`` receives the results of each committed group, in commit order.
* :class:`Backend` — where the namespaces live: makes a namespace's store, says which
  exist, and gives the empty database a namespace that does not exist reads as.

The engine depends on these protocols only; it never names a store class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node
from rtdb.storage.indexes import IndexDef

T = TypeVar("T")


class Txn(Protocol):
    """Reads and writes of one transaction (not thread-safe)."""

    seq: int
    """The last commit sequence number of the namespace as this transaction sees it."""

    # reads
    def node(self, path: Path, *, plain: bool = False, raw: bool = False) -> Node: ...
    def exists(self, path: Path) -> bool: ...
    def prefetch(self, paths: list[Path]) -> None: ...
    def child_keys(self, path: Path, window: QuerySpec | None = None) -> tuple[Node, list[str]]: ...
    def shallow(self, path: Path) -> Node: ...
    def query(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[tuple[str, Node]]: ...
    def query_keys(self, path: Path, spec: QuerySpec, index: IndexDef | None) -> list[str]: ...
    def find_index(self, path: Path, spec: QuerySpec) -> IndexDef | None: ...
    def export_chunks(self, path: Path, *, keep_priorities: bool) -> Iterator[str]: ...
    def meta(self, name: str) -> Any: ...
    def committed_seq(self) -> int: ...
    def changes_after(self, seq: int, limit: int = 1000) -> list[bytes]: ...

    # writes
    def set(self, path: Path, node: Node, *, old: Node = ...) -> None: ...
    def set_meta(self, name: str, value: Any) -> None: ...
    def declare_index(self, pattern: Path, child: Path) -> IndexDef: ...
    def next_seq(self) -> int: ...
    def log_change(self, seq: int, data: bytes) -> None: ...
    def take_disconnect_ops(self, ns: str, session_id: str, *, taker: str, owner: str | None = None,
                            upto: int | None = None) -> list[DisconnectRow]:
        """Delete and return a session's stored onDisconnect operations (PostgreSQL keeps them;
        a SQLite server keeps them in memory and raises ``NotImplementedError``)."""
        ...
    # Yjs documents (issue 16)
    def ydoc_rows(self, key: str, after: int = 0) -> list[tuple[int, bytes]]: ...
    def ydoc_last(self, key: str) -> int: ...
    def ydoc_append(self, key: str, n: int, data: bytes) -> None: ...
    def ydoc_compact(self, key: str, upto: int, state: bytes) -> None: ...
    def ydoc_near(self, path: Path, *, limit: int) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class DisconnectRow:
    """One stored onDisconnect operation (``path``: keys joined with ``/``; ``data`` and
    ``caller``: JSON as the engine encoded them)."""

    session_id: str
    ord: int
    ns: str
    kind: str
    path: str
    data: bytes
    caller: bytes


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What :meth:`Store.compact` gave back."""

    bytes_before: int
    bytes_after: int
    pages_freed: int
    auto_vacuum: str
    wal_truncated: bool

    def as_json(self) -> dict[str, Any]:
        return {"bytesBefore": self.bytes_before, "bytesAfter": self.bytes_after, "pagesFreed": self.pages_freed,
                "autoVacuum": self.auto_vacuum, "walTruncated": self.wal_truncated}


class Store(Protocol):
    """One namespace's data."""

    on_commit: Callable[[list[Any]], None] | None

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def read(self, fn: Callable[[Txn], T]) -> T: ...
    async def write(self, fn: Callable[[Txn], T], *, paths: tuple[Path, ...] = ()) -> T:
        """Run ``fn`` in the next group commit; ``paths``: where it writes, if known (a hint:
        a store may read their rows for the whole group at once)."""
        ...

    async def compact(self) -> CompactReport:
        """Give the space of deleted data back to the file system (or the database server)
        between write groups; writers wait at most one short step."""
        ...


class EmptyReads(Protocol):
    """The empty database: reads see nothing; ``try_write`` runs a write and undoes it."""

    async def read(self, fn: Callable[[Txn], T]) -> T: ...
    async def try_write(self, fn: Callable[[Txn], T]) -> T: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """Where a server's namespaces live."""

    def store(self, ns: str, *, writer: bool = True) -> Store:
        """A new, unopened store of ``ns`` (created on open if it does not exist). With
        ``writer=False`` it only reads: another process writes (``--write-process``)."""
        ...

    def exists(self, ns: str) -> bool:
        """Whether ``ns`` has a database (without creating one)."""
        ...

    def namespaces(self) -> list[str]:
        """The namespaces that have a database."""
        ...

    def drop(self, ns: str) -> int | None:
        """Delete ``ns`` once no process has it open (they were asked to close it): the bytes
        freed, ``None`` if it did not exist; :class:`~rtdb.core.errors.Unavailable` if some
        process kept it open. Blocking: run it in a thread."""
        ...

    def empty(self) -> EmptyReads:
        """What a namespace that does not exist reads as."""
        ...
