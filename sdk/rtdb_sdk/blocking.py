"""The blocking facade: the same API without ``await``, for scripts and notebooks.

The async SDK runs on an event loop in a background thread; every call is
handed to it and waited for. Callbacks run on that thread. Inside a callback,
writes (``set``/``update``/``remove``/``push``) do not block: they are applied
and sent, and the call returns at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

from rtdb_sdk.connection import TokenProvider
from rtdb_sdk.database import Database
from rtdb_sdk.reference import CancelCallback, DataSnapshot, Listener, Query, Reference, TransactionResult
from rtdb_sdk.transport import Transport

T = TypeVar("T")


class _Runner:
    """An event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="rtdb_sdk-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def on_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self.on_loop:
            coro.close()
            raise RuntimeError("a blocking call inside a callback would deadlock; use the async API there")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        if self.on_loop:
            return fn()

        async def call() -> T:
            return fn()

        return self.run(call(), timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def connect_sync(
    url: str,
    token: str | None = None,
    cache_path: str | None = None,
    *,
    timeout: float | None = 60.0,
    transport: Transport | None = None,
    min_reconnect_delay: float = 1.0,
    token_provider: TokenProvider | None = None,
) -> SyncDatabase:
    """A blocking :class:`Database`; ``timeout`` bounds every call (``None``: wait forever).
    ``token_provider`` is as for :func:`~rtdb_sdk.connect` (an async function: it runs on
    the client's own event loop thread)."""
    runner = _Runner()

    async def start() -> Database:
        db = Database(
            url, token=token, cache_path=cache_path, transport=transport, min_reconnect_delay=min_reconnect_delay,
            token_provider=token_provider,
        )
        return await db.start()

    try:
        db = runner.run(start(), timeout)
    except BaseException:
        runner.stop()
        raise
    return SyncDatabase(db, runner, timeout)


class SyncDatabase:
    def __init__(self, db: Database, runner: _Runner, timeout: float | None) -> None:
        self._db = db
        self._runner = runner
        self._timeout = timeout
        self._closed = False

    def reference(self, path: str = "") -> SyncReference:
        return SyncReference(self._db.reference(path), self)

    ref = reference

    @property
    def server_time_offset(self) -> int:
        return self._db.server_time_offset

    @property
    def connected(self) -> bool:
        return self._db.connected

    def wait_connected(self, timeout: float | None = None) -> None:
        self._runner.run(self._db.wait_connected(), timeout if timeout is not None else self._timeout)

    def refresh_auth(self) -> None:
        self._runner.run(self._db.refresh_auth(), self._timeout)

    def go_offline(self) -> None:
        self._runner.run(self._db.go_offline(), self._timeout)

    def go_online(self) -> None:
        self._runner.run(self._db.go_online(), self._timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self._db.close(), self._timeout)
        finally:
            self._runner.stop()

    def __enter__(self) -> SyncDatabase:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _wait(self, awaitable: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await awaitable()

        return self._runner.run(run(), self._timeout)


class SyncListener:
    def __init__(self, listener: Listener, runner: _Runner) -> None:
        self._listener = listener
        self._runner = runner

    @property
    def active(self) -> bool:
        return self._listener.active

    def cancel(self) -> None:
        self._runner.call(self._listener.cancel)


class SyncQuery:
    def __init__(self, query: Query, db: SyncDatabase) -> None:
        self._query = query
        self._db = db

    @property
    def key(self) -> str | None:
        return self._query.key

    @property
    def path(self) -> tuple[str, ...]:
        return self._query.path

    @property
    def ref(self) -> SyncReference:
        return SyncReference(self._query.ref, self._db)

    def __repr__(self) -> str:
        return f"Sync{self._query!r}"

    def _q(self, query: Query) -> SyncQuery:
        return SyncQuery(query, self._db)

    def order_by_child(self, path: str) -> SyncQuery:
        return self._q(self._query.order_by_child(path))

    def order_by_key(self) -> SyncQuery:
        return self._q(self._query.order_by_key())

    def order_by_value(self) -> SyncQuery:
        return self._q(self._query.order_by_value())

    def order_by_priority(self) -> SyncQuery:
        return self._q(self._query.order_by_priority())

    def start_at(self, value: Any = None, key: str | None = None) -> SyncQuery:
        return self._q(self._query.start_at(value, key))

    def start_after(self, value: Any = None, key: str | None = None) -> SyncQuery:
        return self._q(self._query.start_after(value, key))

    def end_at(self, value: Any = None, key: str | None = None) -> SyncQuery:
        return self._q(self._query.end_at(value, key))

    def end_before(self, value: Any = None, key: str | None = None) -> SyncQuery:
        return self._q(self._query.end_before(value, key))

    def equal_to(self, value: Any, key: str | None = None) -> SyncQuery:
        return self._q(self._query.equal_to(value, key))

    def limit_to_first(self, n: int) -> SyncQuery:
        return self._q(self._query.limit_to_first(n))

    def limit_to_last(self, n: int) -> SyncQuery:
        return self._q(self._query.limit_to_last(n))

    def get(self) -> DataSnapshot:
        return self._db._wait(self._query.get)

    def _on(
        self, method: Callable[..., Listener], callback: Callable[..., Any], on_cancel: CancelCallback | None
    ) -> SyncListener:
        return SyncListener(self._db._runner.call(lambda: method(callback, on_cancel)), self._db._runner)

    def on_value(
        self, callback: Callable[[DataSnapshot], Any], on_cancel: CancelCallback | None = None
    ) -> SyncListener:
        """``callback`` runs on the SDK's thread."""
        return self._on(self._query.on_value, callback, on_cancel)

    def on_child_added(
        self, callback: Callable[[DataSnapshot, str | None], Any], on_cancel: CancelCallback | None = None
    ) -> SyncListener:
        return self._on(self._query.on_child_added, callback, on_cancel)

    def on_child_changed(
        self, callback: Callable[[DataSnapshot, str | None], Any], on_cancel: CancelCallback | None = None
    ) -> SyncListener:
        return self._on(self._query.on_child_changed, callback, on_cancel)

    def on_child_removed(
        self, callback: Callable[[DataSnapshot], Any], on_cancel: CancelCallback | None = None
    ) -> SyncListener:
        return self._on(self._query.on_child_removed, callback, on_cancel)

    def on_child_moved(
        self, callback: Callable[[DataSnapshot, str | None], Any], on_cancel: CancelCallback | None = None
    ) -> SyncListener:
        return self._on(self._query.on_child_moved, callback, on_cancel)

    def values(self, timeout: float | None = None) -> Iterator[DataSnapshot]:
        """Every value event, blocking; stops when the iterator is closed (``break``)."""
        items: queue.Queue[DataSnapshot | Exception] = queue.Queue()
        listener = self.on_value(items.put, on_cancel=items.put)
        try:
            while True:
                item = items.get(timeout=timeout)
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            listener.cancel()


class SyncReference(SyncQuery):
    _query: Reference

    def __init__(self, ref: Reference, db: SyncDatabase) -> None:
        super().__init__(ref, db)

    def _r(self, ref: Reference | None) -> SyncReference | None:
        return SyncReference(ref, self._db) if ref is not None else None

    @property
    def parent(self) -> SyncReference | None:
        return self._r(self._query.parent)

    @property
    def root(self) -> SyncReference:
        return SyncReference(self._query.root, self._db)

    def child(self, path: str) -> SyncReference:
        return SyncReference(self._query.child(path), self._db)

    def _write(self, start: Callable[[], Awaitable[Any]]) -> None:
        runner = self._db._runner
        if runner.on_loop:
            start()  # inside a callback: applied and sent; not waited for
            return
        self._db._wait(start)

    def set(self, value: Any) -> None:
        self._write(lambda: self._query.set(value))

    def update(self, values: Mapping[str, Any]) -> None:
        self._write(lambda: self._query.update(values))

    def remove(self) -> None:
        self._write(self._query.remove)

    def push(self, value: Any = None) -> SyncReference:
        runner = self._db._runner
        pushed = runner.call(lambda: self._query.push(value))
        if not runner.on_loop:
            self._db._wait(lambda: pushed)
        return SyncReference(Reference(pushed._repo, pushed.path), self._db)

    def transaction(self, update: Callable[[Any], Any]) -> TransactionResult:
        return self._db._wait(lambda: self._query.transaction(update))

    def on_disconnect(self) -> SyncOnDisconnect:
        return SyncOnDisconnect(self)


class SyncOnDisconnect:
    def __init__(self, ref: SyncReference) -> None:
        self._ref = ref

    def set(self, value: Any) -> None:
        self._ref._db._wait(lambda: self._ref._query.on_disconnect().set(value))

    def update(self, values: Mapping[str, Any]) -> None:
        self._ref._db._wait(lambda: self._ref._query.on_disconnect().update(values))

    def remove(self) -> None:
        self._ref._db._wait(lambda: self._ref._query.on_disconnect().remove())

    def cancel(self) -> None:
        self._ref._db._wait(lambda: self._ref._query.on_disconnect().cancel())
