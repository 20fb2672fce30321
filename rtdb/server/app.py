"""The litestar application factory: one engine, the REST API and the realtime transports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Any

from litestar import Litestar, Response, asgi, get

from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.realtime.broker import Broker
from rtdb.realtime.relay import RelayBroker
from rtdb.server.auth import Authenticator
from rtdb.server.lp import LpEndpoint
from rtdb.server.rest import RestApi
from rtdb.server.rulesfile import load_rules, watch_rules
from rtdb.server.settings import Settings
from rtdb.server.sse import SseEndpoint
from rtdb.server.ws import WsEndpoint
from rtdb.storage.space import SpacePolicy
from rtdb.storage.sqlite import probe_write

log = logging.getLogger("rtdb.server")


def create_app(settings: Settings, *, engine: Engine | None = None, clock: Callable[[], int] | None = None,
               feed: Broker | None = None) -> Litestar:
    """Build the ASGI app. ``engine`` and ``clock`` are injectable for tests; ``feed`` is the
    broker to the other worker processes (`--workers`), which makes the engine shared."""
    if engine is None:
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        if feed is not None:
            kwargs.update(feed=feed, shared=True)
        rules = load_rules(settings.rules) if settings.rules else default_rules(emulator=settings.emulator)
        engine = Engine(
            settings.data_dir,
            access=RulesAccess(rules),
            synchronous=settings.synchronous.upper(),
            indexes=settings.index_map(),
            require_indexes=settings.require_indexes,
            write_process=settings.write_process,
            space=space_policy(settings),
            database_url=settings.database_url,
            **kwargs,
        )
    authenticator = Authenticator(settings)
    sse = SseEndpoint(engine, settings)
    rest = RestApi(engine, settings, authenticator, sse)

    rechecks: set[asyncio.Task[None]] = set()

    def on_rules_change(ns: str | None) -> None:
        """Listens and streams whose callers lost read access are revoked."""
        async def recheck() -> None:
            await sse.recheck(ns)
            if hasattr(ws_endpoint, "recheck"):
                await ws_endpoint.recheck(ns)

        task = asyncio.get_running_loop().create_task(recheck())
        rechecks.add(task)
        task.add_done_callback(rechecks.discard)

    engine.access.on_change(on_rules_change)

    def on_lost(ns: str) -> None:
        """This process missed commits of ``ns`` for good: its clients start over."""
        log.error("namespace %s: restarting its realtime clients after missed commits", ns)
        ws_endpoint.restart(ns)
        sse.end_streams(ns)

    engine.on_lost = on_lost

    def on_dropped(ns: str) -> None:
        """``ns`` was dropped: its listeners hear ``null``, then start over on the new namespace."""
        ws_endpoint.drop(ns)
        sse.drop(ns)

    engine.on_dropped = on_dropped
    if isinstance(engine.feed, RelayBroker):
        engine.feed.on_lost = on_lost

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop = asyncio.Event()
        watcher = None
        if settings.rules is not None:
            watcher = asyncio.create_task(watch_rules(settings.rules.resolve(), engine, stop))
        await ws_endpoint.start()  # with PostgreSQL: a cluster node (lease, durable onDisconnect)
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            sse.close()
            if lp_endpoint.forwarder is not None:
                await lp_endpoint.forwarder.close()
            await ws_endpoint.stop()
            await engine.close()

    @get("/healthz", sync_to_thread=False)
    def healthz() -> Response[dict[str, Any]]:
        health: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
        if engine.writer_pid is not None:
            health["writer_pid"] = engine.writer_pid
        problem = storage_problem(engine.data_dir)
        if problem is not None:
            health.update(status="error", error=problem)
            return Response(health, status_code=503)
        return Response(health)

    @asgi("/", is_mount=True, copy_scope=False)
    async def rest_api(scope: Any, receive: Any, send: Any) -> None:
        await rest(scope, receive, send)

    handlers: list[Any] = [healthz, rest_api]

    # --- WebSocket transport at /.ws (rtdb/server/ws.py) ---
    ws_endpoint = WsEndpoint(engine, settings, authenticator)
    handlers.append(ws_endpoint.route())
    # --- end WebSocket transport ---
    # --- long-polling at /.lp (rtdb/server/lp.py), which upgrades to /.ws ---
    lp_endpoint = LpEndpoint(ws_endpoint, settings)
    handlers.append(lp_endpoint.route())
    app = RtdbApp(
        rest,
        route_handlers=handlers,
        lifespan=[lifespan],
        request_max_body_size=None,
        openapi_config=None,
        logging_config=None,
    )
    app.state.engine = engine
    app.state.sse = sse
    app.state.settings = settings
    app.state.ws = ws_endpoint
    app.state.lp = lp_endpoint
    return app


class RtdbApp(Litestar):
    """The litestar app with a short way in for REST: an HTTP request for a ``.json`` path
    goes straight to :class:`RestApi` (where the ``/`` mount would take it anyway), past
    litestar's middleware and routing, which cost about a tenth of a lone REST write."""

    def __init__(self, rest: RestApi, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rest = rest

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".json"):
            await self.rest(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def space_policy(settings: Settings) -> SpacePolicy:
    """When namespace writers give space back (:mod:`rtdb.storage.space`)."""
    return SpacePolicy(vacuum_free_percent=settings.vacuum_free_percent,
                       wal_truncate_bytes=settings.wal_truncate_mb * 1024 * 1024)


def storage_problem(data_dir: FsPath) -> str | None:
    """Why files cannot be written in ``data_dir`` now (``None`` when they can)."""
    try:
        probe_write(data_dir)
    except OSError as exc:
        return f"storage: cannot write in the data dir {data_dir}: {exc.strerror or exc}"
    return None
