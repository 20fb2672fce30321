"""The public surface: queries, references, listeners, onDisconnect, transactions, and the
data snapshots events carry (a snapshot names its reference and a reference's reads give
snapshots: the two live together, as in the JS SDK's ``Reference_impl``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rtdb.core import path as paths
from rtdb.core.errors import RtdbError
from rtdb.core.path import Path
from rtdb.core.query import Bound, OrderBy, QuerySpec
from rtdb.core.value import Node, children, priority_of, to_plain
from rtdb.protocol.query import from_spec, query_id
from rtdb_sdk.errors import InvalidArgument
from rtdb_sdk.events import EventType, Registration
from rtdb_sdk.nodetree import get_node
from rtdb_sdk.repo import Repo, check_value
from rtdb_sdk.synctree import INFO
from rtdb_sdk.transaction import run_transaction

DEFAULT_ORDER = QuerySpec()


class DataSnapshot:
    """The data at ``ref`` when the event fired (or ``get()`` returned)."""

    __slots__ = ("_node", "_spec", "ref")

    def __init__(self, ref: Reference, node: Node, spec: QuerySpec | None = None) -> None:
        self.ref = ref
        self._node = node
        self._spec = spec or DEFAULT_ORDER

    @property
    def key(self) -> str | None:
        return self.ref.key

    @property
    def path(self) -> Path:
        return self.ref.path

    def val(self) -> Any:
        """The value as plain Python (dicts, lists for array-like objects, leaves, ``None``)."""
        return to_plain(self._node)

    def export_val(self) -> Any:
        """The value with priorities (``.priority``/``.value``), as the export format has it."""
        return self._node

    def exists(self) -> bool:
        return self._node is not None

    @property
    def priority(self) -> str | int | float | None:
        p = priority_of(self._node)
        return p if isinstance(p, (str, int, float)) else None

    def child(self, path: str) -> DataSnapshot:
        ref = self.ref.child(path)
        return DataSnapshot(ref, get_node(self._node, ref.path[len(self.ref.path) :]))

    def has_child(self, path: str) -> bool:
        return self.child(path).exists()

    def has_children(self) -> bool:
        return bool(children(self._node))

    @property
    def size(self) -> int:
        return len(children(self._node))

    def __len__(self) -> int:
        return self.size

    def children(self) -> Iterator[DataSnapshot]:
        """The child snapshots in the query's order (priority, then key, by default)."""
        for key, node in self._spec.apply(children(self._node)):
            yield DataSnapshot(self.ref.child(key), node)

    def __iter__(self) -> Iterator[DataSnapshot]:
        return self.children()

    def __repr__(self) -> str:
        return f"DataSnapshot(key={self.key!r}, value={self.val()!r})"


ValueCallback = Callable[[DataSnapshot], Any]
ChildCallback = Callable[[DataSnapshot, str | None], Any]
CancelCallback = Callable[[Exception], Any]


def parse_path(raw: str) -> Path:
    """A user path; ``.info/...`` is allowed as the first segment."""
    segments = [s for s in raw.split("/") if s]
    if segments[:1] == [INFO[0]]:
        return (INFO[0], *parse_path("/".join(segments[1:])))
    try:
        return paths.parse(raw)
    except RtdbError as exc:
        raise InvalidArgument(exc.message) from None


class Listener:
    """Returned by every ``on_*`` method; :meth:`cancel` stops the callback."""

    __slots__ = ("_query", "_registration")

    def __init__(self, query: Query, registration: Registration) -> None:
        self._query = query
        self._registration = registration

    @property
    def active(self) -> bool:
        return self._registration.active

    def cancel(self) -> None:
        self._query._repo.remove_listener(self._query.path, self._query.query_id, self._registration)


class SnapshotStream:
    """``async for snap in ref.values()``: every value event as an async iterator
    (``aclose()`` or leaving ``async with`` stops listening)."""

    def __init__(self, query: Query) -> None:
        self._queue: asyncio.Queue[DataSnapshot | Exception] = asyncio.Queue()
        self._listener = query.on_value(self._queue.put_nowait, on_cancel=self._queue.put_nowait)

    def __aiter__(self) -> SnapshotStream:
        return self

    async def __anext__(self) -> DataSnapshot:
        if not self._listener.active and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self._listener.cancel()

    async def __aenter__(self) -> SnapshotStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Query:
    """A location plus an order, range and limit. Immutable: every method returns a new query."""

    __slots__ = ("_repo", "_ordered", "path", "spec")

    def __init__(self, repo: Repo, path: Path, spec: QuerySpec | None = None, *, ordered: bool = False) -> None:
        self._repo = repo
        self.path = path
        self.spec = spec or QuerySpec()
        self._ordered = ordered

    @property
    def key(self) -> str | None:
        return self.path[-1] if self.path else None

    @property
    def ref(self) -> Reference:
        return Reference(self._repo, self.path)

    @property
    def query_id(self) -> str:
        return query_id(from_spec(self.spec))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({paths.to_str(self.path)!r}, {self.query_id})"

    # -- building ------------------------------------------------------------------------------
    def _order(self, order_by: OrderBy, child: Path = ()) -> Query:
        if self._ordered:
            raise InvalidArgument("You can't combine multiple orderBy calls.")
        if self.spec.start or self.spec.end or self.spec.limit is not None:
            # Firebase allows the order first only; keep the bounds meaningful.
            raise InvalidArgument("Call an order_by method before start/end/equal_to/limit.")
        return Query(self._repo, self.path, replace(self.spec, order_by=order_by, child=child), ordered=True)

    def order_by_child(self, path: str) -> Query:
        child = parse_path(path)
        if not child or child[0].startswith("."):
            raise InvalidArgument(f"order_by_child: invalid path {path!r}")
        return self._order("child", child)

    def order_by_key(self) -> Query:
        return self._order("key")

    def order_by_value(self) -> Query:
        return self._order("value")

    def order_by_priority(self) -> Query:
        return self._order("priority")

    def _bound(self, value: Any, key: str | None, inclusive: bool, name: str) -> Bound:
        if isinstance(value, (dict, list)) or (value is not None and not isinstance(value, (str, int, float, bool))):
            raise InvalidArgument(f"{name}: the value must be a string, number, boolean or None")
        if self.spec.order_by == "key":
            if not isinstance(value, str):
                raise InvalidArgument(f"{name}: with order_by_key() the value must be a string key")
            if key is not None:
                raise InvalidArgument(f"{name}: no key may be given with order_by_key()")
        if self.spec.order_by == "priority" and isinstance(value, bool):
            raise InvalidArgument(f"{name}: priorities are strings, numbers or None")
        return Bound(value, key, inclusive)

    def _with_start(self, bound: Bound, name: str) -> Query:
        if self.spec.start is not None:
            raise InvalidArgument(f"{name}: a start bound was already set")
        return Query(self._repo, self.path, replace(self.spec, start=bound), ordered=self._ordered)

    def _with_end(self, bound: Bound, name: str) -> Query:
        if self.spec.end is not None:
            raise InvalidArgument(f"{name}: an end bound was already set")
        return Query(self._repo, self.path, replace(self.spec, end=bound), ordered=self._ordered)

    def start_at(self, value: Any = None, key: str | None = None) -> Query:
        return self._with_start(self._bound(value, key, True, "start_at"), "start_at")

    def start_after(self, value: Any = None, key: str | None = None) -> Query:
        return self._with_start(self._bound(value, key, False, "start_after"), "start_after")

    def end_at(self, value: Any = None, key: str | None = None) -> Query:
        return self._with_end(self._bound(value, key, True, "end_at"), "end_at")

    def end_before(self, value: Any = None, key: str | None = None) -> Query:
        return self._with_end(self._bound(value, key, False, "end_before"), "end_before")

    def equal_to(self, value: Any, key: str | None = None) -> Query:
        bound = self._bound(value, key, True, "equal_to")
        return self._with_start(bound, "equal_to")._with_end(bound, "equal_to")

    def _limit(self, n: int, from_last: bool, name: str) -> Query:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise InvalidArgument(f"{name}: the limit must be a positive integer")
        if self.spec.limit is not None:
            raise InvalidArgument(f"{name}: a limit was already set")
        return Query(self._repo, self.path, replace(self.spec, limit=n, from_last=from_last), ordered=self._ordered)

    def limit_to_first(self, n: int) -> Query:
        return self._limit(n, False, "limit_to_first")

    def limit_to_last(self, n: int) -> Query:
        return self._limit(n, True, "limit_to_last")

    # -- reading -------------------------------------------------------------------------------
    async def get(self) -> DataSnapshot:
        """The current value: from the mirror when it holds it, else from the server."""
        repo = self._repo
        node = await repo.get(self.path, self.spec, self.query_id)
        return DataSnapshot(self.ref, node, self.spec)

    def _listen(self, kind: EventType, callback: Callable[..., Any], on_cancel: CancelCallback | None) -> Listener:
        registration = Registration(kind, callback, on_cancel)
        self._repo.add_listener(self.path, self.spec, self.query_id, registration)
        return Listener(self, registration)

    def on_value(self, callback: ValueCallback, on_cancel: CancelCallback | None = None) -> Listener:
        """``callback(snapshot)`` now (if the data is known) and after every change."""
        return self._listen("value", callback, on_cancel)

    def on_child_added(self, callback: ChildCallback, on_cancel: CancelCallback | None = None) -> Listener:
        """``callback(snapshot, previous_child_key)`` for every child, then for each new one."""
        return self._listen("child_added", callback, on_cancel)

    def on_child_changed(self, callback: ChildCallback, on_cancel: CancelCallback | None = None) -> Listener:
        return self._listen("child_changed", callback, on_cancel)

    def on_child_removed(
        self, callback: Callable[[DataSnapshot], Any], on_cancel: CancelCallback | None = None
    ) -> Listener:
        return self._listen("child_removed", lambda snap, _prev: callback(snap), on_cancel)

    def on_child_moved(self, callback: ChildCallback, on_cancel: CancelCallback | None = None) -> Listener:
        return self._listen("child_moved", callback, on_cancel)

    def values(self) -> SnapshotStream:
        """Every value event as an async iterator."""
        return SnapshotStream(self)


@dataclass(frozen=True, slots=True)
class TransactionResult:
    committed: bool
    snapshot: DataSnapshot


class Reference(Query):
    """A location in the database."""

    __slots__ = ()

    def __init__(self, repo: Repo, path: Path) -> None:
        super().__init__(repo, path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and other._repo is self._repo and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def parent(self) -> Reference | None:
        return Reference(self._repo, self.path[:-1]) if self.path else None

    @property
    def root(self) -> Reference:
        return Reference(self._repo, ())

    def child(self, path: str) -> Reference:
        rel = parse_path(path)
        full = self.path + rel
        if full[:1] != INFO:
            try:
                paths.check_limits(full)
            except RtdbError as exc:
                raise InvalidArgument(exc.message) from None
        return Reference(self._repo, full)

    # -- writing -------------------------------------------------------------------------------
    def set(self, value: Any) -> asyncio.Future[None]:
        """Write ``value`` here (``None`` deletes). Applies locally at once; await for the server's answer."""
        return self._repo.set(self.path, value)

    def update(self, values: Mapping[str, Any]) -> asyncio.Future[None]:
        """Set several children (keys may be paths such as ``"a/b"``) atomically; ``None`` deletes."""
        return self._repo.update(self.path, values)

    def remove(self) -> asyncio.Future[None]:
        return self._repo.set(self.path, None)

    def push(self, value: Any = None) -> ThenableReference:
        """A child with a new push id; with ``value``, written there. ``await`` gives the new reference."""
        key = self._repo.next_push_id()
        ref = self.child(key)
        if value is None:
            done: asyncio.Future[None] = self._repo.loop.create_future()
            done.set_result(None)
            return ThenableReference(self._repo, ref.path, done)
        return ThenableReference(self._repo, ref.path, ref.set(value))

    async def transaction(self, update: Callable[[Any], Any], *, apply_locally: bool = True) -> TransactionResult:
        """Run ``update(current_value)`` until the server accepts its result (up to 25 times).
        Return :data:`rtdb_sdk.ABORT` from ``update`` to abort."""
        outcome = await run_transaction(self._repo, self.path, update, apply_locally=apply_locally)
        return TransactionResult(outcome.committed, DataSnapshot(self, outcome.node))

    def on_disconnect(self) -> OnDisconnect:
        return OnDisconnect(self)


class ThenableReference(Reference):
    """What :meth:`Reference.push` returns: a reference you may also await (for the write)."""

    __slots__ = ("_write",)

    def __init__(self, repo: Repo, path: Path, write: Awaitable[None]) -> None:
        super().__init__(repo, path)
        self._write = write

    def __await__(self) -> Generator[Any, None, Reference]:
        yield from self._write.__await__()
        return Reference(self._repo, self.path)


class OnDisconnect:
    """Writes the server performs when this client's connection goes away."""

    def __init__(self, ref: Reference) -> None:
        self._ref = ref

    async def set(self, value: Any) -> None:
        await self._ref._repo.on_disconnect("o", self._ref.path, check_value(value, self._ref.path))

    async def update(self, values: Mapping[str, Any]) -> None:
        if not values:
            return
        data = {}
        for key, value in values.items():
            rel = parse_path(key)
            data["/".join(rel)] = check_value(value, self._ref.path + rel)
        await self._ref._repo.on_disconnect("om", self._ref.path, data)

    async def remove(self) -> None:
        await self.set(None)

    async def cancel(self) -> None:
        await self._ref._repo.on_disconnect("oc", self._ref.path, None)


__all__ = [
    "DataSnapshot",
    "Listener",
    "OnDisconnect",
    "Query",
    "Reference",
    "SnapshotStream",
    "ThenableReference",
    "TransactionResult",
]
