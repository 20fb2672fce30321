"""The repo: where the connection meets the sync tree (the JS SDK's ``Repo``).

Every user operation and every server message becomes one sync-tree transition;
the events it returns go to the event queue, the listens it implies to the
connection. The optimistic round trip of a write: validate → resolve server
values locally → apply as a pending write (events fire now) → send → on the
answer, ack (or revert, and the awaiting call raises).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from rtdb.core import path as paths
from rtdb.core.errors import RtdbError
from rtdb.core.path import Path
from rtdb.core.pushid import PushIdGenerator
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, normalize
from rtdb.protocol.client import request_path
from rtdb.protocol.query import DEFAULT_QUERY_ID, from_spec
from rtdb_sdk.connection import Connection, TokenProvider
from rtdb_sdk.errors import DatabaseError, InvalidArgument, Offline, error_for_status, listen_error
from rtdb_sdk.eventqueue import EventQueue
from rtdb_sdk.events import Event, Registration
from rtdb_sdk.nodetree import get_node
from rtdb_sdk.persistence import Persistence
from rtdb_sdk.servervalues import resolve_locally
from rtdb_sdk.synctree import INFO, Effects, ListenRequest, SyncTree, is_info
from rtdb_sdk.transport import DatabaseUrl, Transport

log = logging.getLogger("rtdb_sdk")

SnapshotFactory = Callable[[Path, Node, QuerySpec | None], Any]
GET_OFFLINE_TIMEOUT_S = 3.0


def check_value(value: Any, at: Path) -> Node:
    try:
        return normalize(value, at)
    except RtdbError as exc:
        raise InvalidArgument(exc.message) from None


class Repo:
    def __init__(
        self,
        url: DatabaseUrl,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        transport: Transport | None = None,
        cache_path: str | None = None,
        clock: Callable[[], float] = time.time,
        min_reconnect_delay: float = 1.0,
    ) -> None:
        self.url = url
        self.tree = SyncTree()
        self.queue = EventQueue(self._deliver)
        self.conn = Connection(
            url, self, token=token, token_provider=token_provider, transport=transport, min_delay=min_reconnect_delay,
            clock=clock,
        )
        self.snapshot: SnapshotFactory = lambda path, node, spec: node
        self.clock = clock
        self.server_time_offset = 0
        self._cache_path = cache_path
        self._store: Persistence | None = None
        self._write_id = 0
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._on_disconnect_ops: list[tuple[str, Path, Any]] = []
        self._push_ids = PushIdGenerator()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.tree.apply_server_overwrite(INFO + ("connected",), False)
        self.tree.apply_server_overwrite(INFO + ("serverTimeOffset",), 0)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._cache_path is not None:
            self._store = Persistence(self._cache_path, self.url.http_url, self._loop.call_soon)
            self._load()
        self.conn.start()

    async def close(self) -> None:
        await self.conn.close()
        for fut in self._futures.values():
            if not fut.done():
                fut.cancel()
        if self._store is not None:
            self._store.close()
            self._store = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000 + self.server_time_offset)

    def next_push_id(self) -> str:
        return self._push_ids.next(self.now_ms())

    def _load(self) -> None:
        store = self._store
        assert store is not None
        rows = store.load_cache()
        for path, node in rows:
            self.tree.server.set(path, node)
        if len(rows) > 1000:
            store.compact(self.tree.server.get(()))
        for path in store.load_tracked():
            self.tree.mark_cached(path)
        for write_id, path, kind, data in store.load_writes():
            self._write_id = max(self._write_id, write_id)
            if kind == "set":
                self._send_set(write_id, path, data)
            else:
                self._send_merge(write_id, path, {paths.parse(k): v for k, v in data.items()})

    # -- events ------------------------------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        registration = event.registration
        if event.type == "cancel":
            if registration.on_cancel is not None:
                registration.on_cancel(event.error or DatabaseError("cancelled"))
            return
        assert registration.callback is not None
        snap = self.snapshot(event.data_path, event.node, event.spec if event.key is None else None)
        if event.type == "value":
            registration.callback(snap)
        else:
            registration.callback(snap, event.prev)

    def apply(self, effects: Effects) -> None:
        for request in effects.start:
            self.conn.listen(request, self._listen_answered(request))
        for request in effects.stop:
            self.conn.unlisten(request)
        self.queue.raise_events(effects.events)

    def _listen_answered(self, request: ListenRequest) -> Callable[[str, Any], None]:
        def answered(status: str, data: Any) -> None:
            if self.tree.listen_request(request.path, request.query_id) is not request:
                return  # an answer for a listen stopped since
            if status == "ok":
                if isinstance(data, dict) and data.get("w"):
                    log.warning("Using an unspecified index for %s; consider .indexOn", paths.to_str(request.path))
                if request.tag is None and self._store is not None:
                    self._store.track(request.path)
                self.queue.raise_events(self.tree.apply_listen_complete(request.path, request.query_id))
            else:
                self.conn.forget(request)
                error = listen_error(status, paths.to_str(request.path))
                self.apply(self.tree.apply_listen_failed(request.path, request.query_id, error))

        return answered

    # -- listeners ---------------------------------------------------------------------------
    def add_listener(self, path: Path, spec: QuerySpec | None, query_id: str, registration: Registration) -> None:
        self.apply(
            self.tree.add_registration(path, None if query_id == DEFAULT_QUERY_ID else spec, query_id, registration)
        )

    def remove_listener(self, path: Path, query_id: str, registration: Registration) -> None:
        if registration.active:
            self.apply(self.tree.remove_registration(path, query_id, registration))

    # -- the connection's delegate -----------------------------------------------------------
    def on_connected(self, server_time_ms: int) -> None:
        self.server_time_offset = server_time_ms - int(self.clock() * 1000)
        events = self.tree.apply_server_overwrite(INFO + ("serverTimeOffset",), self.server_time_offset)
        events += self.tree.apply_server_overwrite(INFO + ("connected",), True)
        self.queue.raise_events(events)

    def on_disconnected(self) -> None:
        events: list[Event] = []
        ops, self._on_disconnect_ops = self._on_disconnect_ops, []
        now = self.now_ms()
        for kind, path, data in ops:  # the server runs them; show them now (as the JS SDK does)
            if kind == "set":
                node = resolve_locally(data, path, now, self.tree.server_value)
                events += self.tree.apply_server_overwrite(path, node)
            else:
                children = {rel: resolve_locally(v, path + rel, now, self.tree.server_value) for rel, v in data.items()}
                events += self.tree.apply_server_merge(path, children)
        events += self.tree.apply_server_overwrite(INFO + ("connected",), False)
        self.queue.raise_events(events)

    def on_data(self, path: Path, data: Any, merge: bool, tag: int | None) -> None:
        try:
            if merge:
                if not isinstance(data, dict):
                    return
                children = {}
                for k, v in data.items():
                    rel = paths.parse(k)
                    children[rel] = from_server(v, path + rel)
                events = self.tree.apply_server_merge(path, children, tag)
                if tag is None and self._store is not None:
                    self._store.server_merge(path, children)
            else:
                node = from_server(data, path)
                events = self.tree.apply_server_overwrite(path, node, tag)
                if tag is None and self._store is not None:
                    self._store.server_overwrite(path, node)
        except RtdbError as exc:
            log.warning("ignored invalid data from the server at %s: %s", paths.to_str(path), exc)
            return
        self.queue.raise_events(events)

    def on_listen_revoked(self, path: Path, query_id: str) -> None:
        error = listen_error("permission_denied", paths.to_str(path))
        self.apply(self.tree.apply_listen_failed(path, query_id, error))

    def listen_hash(self, path: Path, query_id: str) -> str:
        return self.tree.listen_hash(path, query_id)

    # -- writes ------------------------------------------------------------------------------
    def _resolve(self, node: Node, path: Path) -> Node:
        return resolve_locally(node, path, self.now_ms(), self.tree.visible)

    def set(self, path: Path, value: Any) -> asyncio.Future[None]:
        check_writable(path)
        node = check_value(value, path)
        self._write_id += 1
        if self._store is not None:
            self._store.add_write(self._write_id, path, "set", node)
        return self._send_set(self._write_id, path, node)

    def update(self, path: Path, values: Mapping[str, Any]) -> asyncio.Future[None]:
        check_writable(path)
        children: dict[Path, Node] = {}
        for raw, value in values.items():
            try:
                rel = paths.parse(raw)
            except RtdbError as exc:
                raise InvalidArgument(f"update(): {exc.message}") from None
            if not rel:
                raise InvalidArgument("update(): a key may not be empty")
            children[rel] = check_value(value, path + rel)
        ordered = sorted(children)
        for a, b in zip(ordered, ordered[1:]):
            if b[: len(a)] == a:
                raise InvalidArgument(f"update(): path {'/'.join(a)} is an ancestor of {'/'.join(b)}")
        if not children:
            done: asyncio.Future[None] = self.loop.create_future()
            done.set_result(None)
            return done
        self._write_id += 1
        if self._store is not None:
            self._store.add_write(self._write_id, path, "merge", {"/".join(k): v for k, v in children.items()})
        return self._send_merge(self._write_id, path, children)

    def _send_set(self, write_id: int, path: Path, node: Node) -> asyncio.Future[None]:
        events = self.tree.apply_user_set(write_id, path, self._resolve(node, path), raw=node)
        fut = self._track(write_id)
        self.conn.request("write", "p", {"p": request_path(path), "d": node}, self._write_answered(write_id, path))
        self.queue.raise_events(events)
        return fut

    def _send_merge(self, write_id: int, path: Path, children: dict[Path, Node]) -> asyncio.Future[None]:
        local = {rel: self._resolve(node, path + rel) for rel, node in children.items()}
        events = self.tree.apply_user_merge(write_id, path, local)
        fut = self._track(write_id)
        body = {"p": request_path(path), "d": {"/".join(rel): node for rel, node in children.items()}}
        self.conn.request("write", "m", body, self._write_answered(write_id, path))
        self.queue.raise_events(events)
        return fut

    def _track(self, write_id: int) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self._futures[write_id] = fut
        return fut

    def _write_answered(self, write_id: int, path: Path) -> Callable[[str, Any], None]:
        def answered(status: str, data: Any) -> None:
            ok = status == "ok"
            events = self.tree.apply_ack(write_id, revert=not ok)
            if self._store is not None:
                self._store.remove_write(write_id)
            fut = self._futures.pop(write_id, None)
            self.queue.raise_events(events)
            if fut is None or fut.done():
                return
            if ok:
                fut.set_result(None)
            else:
                fut.set_exception(error_for_status(status, data, path=paths.to_str(path)))

        return answered

    def next_write_id(self) -> int:
        self._write_id += 1
        return self._write_id

    def request(self, kind: Any, action: str, body: dict[str, Any]) -> asyncio.Future[tuple[str, Any]]:
        """Send a request; the future gets ``(status, data)`` (never an exception)."""
        fut: asyncio.Future[tuple[str, Any]] = self.loop.create_future()

        def answered(status: str, data: Any) -> None:
            if not fut.done():
                fut.set_result((status, data))

        self.conn.request(kind, action, body, answered)
        return fut

    # -- reads -------------------------------------------------------------------------------
    async def get(self, path: Path, spec: QuerySpec | None, query_id: str) -> Node:
        filtered = spec is not None and not spec.is_default
        if is_info(path) or self.tree.is_complete(path):
            node = self.tree.visible(path)
            return _window(node, spec) if filtered else node
        view = self.tree.complete_view(path, query_id)
        if view is not None:
            return view.cache.share()
        if not self.conn.connected:
            try:
                await asyncio.wait_for(asyncio.shield(self.conn.wait_connected()), GET_OFFLINE_TIMEOUT_S)
            except TimeoutError:
                if self.tree.has_cached(path) or self.tree.writes.covers(path):
                    node = self.tree.visible(path)
                    return _window(node, spec) if filtered else node
                raise Offline("Client is offline.", path=paths.to_str(path)) from None
        status, data = await self.request("get", "g", {"p": request_path(path), "q": from_spec(spec)})
        if status != "ok":
            error = error_for_status(status, data, path=paths.to_str(path))
            error.args = (data if isinstance(data, str) and data else status,)
            raise error
        node = normalize(data, path)
        return node if filtered else self.tree.writes.overlay(node, path)

    # -- onDisconnect ------------------------------------------------------------------------
    async def on_disconnect(self, action: str, path: Path, data: Any) -> None:
        check_writable(path)
        body: dict[str, Any] = {"p": request_path(path), "d": data}
        status, detail = await self.request("od", action, body)
        if status != "ok":
            raise error_for_status(status, detail, path=paths.to_str(path))
        if action == "o":
            self._on_disconnect_ops.append(("set", path, data))
        elif action == "om":
            self._on_disconnect_ops.append(("merge", path, {paths.parse(k): v for k, v in data.items()}))
        else:
            self._on_disconnect_ops = [op for op in self._on_disconnect_ops if op[1][: len(path)] != path]


def from_server(data: Any, at: Path) -> Node:
    """Server data in node form: checked cheaply, normalized only when it is not already."""
    return data if _is_node(data) else normalize(data, at)


def _is_node(v: Any) -> bool:
    t = type(v)
    if t is str or t is bool or t is int:
        return True
    if t is dict:
        if not v:
            return False
        for k, c in v.items():
            if c is None or (k[:1] == "." and k not in (".priority", ".value")) or not _is_node(c):
                return False
        return True
    if t is float:
        return math.isfinite(v) and not v.is_integer()
    return False


def check_writable(path: Path) -> None:
    if is_info(path):
        raise InvalidArgument("cannot write to .info paths")


def _window(node: Node, spec: QuerySpec | None) -> Node:
    from rtdb.core.value import children

    assert spec is not None
    window = dict(spec.apply(children(node)))
    return window or None


def child_node(node: Node, rel: Path) -> Node:
    return get_node(node, rel)
