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
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from rtdb.engine.access import RulesAccess, default_rules
from rtdb.engine.engine import Engine
from rtdb.engine.writer import WriterProcess
from rtdb.realtime.broker import Broker
from rtdb.realtime.ordered import OrderedFeed
from rtdb.server import console
from rtdb.server.auth import Authenticator
from rtdb.server.lp import LpEndpoint
from rtdb.server.metrics import Sources
from rtdb.server.monitor import Monitor
from rtdb.server.rest import RestApi
from rtdb.server.rulesfile import load_rules, watch_rules
from rtdb.server.settings import Settings
from rtdb.server.sse import SseEndpoint
from rtdb.server.ws import WsEndpoint
from rtdb.server.yjs import PREFIX as YJS_PREFIX
from rtdb.server.yjs import YjsEndpoint
from rtdb.storage.space import SpacePolicy
from rtdb.storage.sqlite import probe_write

log = logging.getLogger("rtdb.server")

CONSOLE = "/.console/"
"""The console's paths, served by litestar even where they end in ``.json`` (its OpenAPI document)."""


def create_app(settings: Settings, *, engine: Engine | None = None, clock: Callable[[], int] | None = None,
               feed: Broker | None = None) -> Litestar:
    """Build the ASGI app. ``engine`` and ``clock`` are injectable for tests; ``feed`` is the
    broker to the other worker processes (`--workers`), which makes the engine shared. With
    ``settings.redis_url`` the server is a node of a cluster (:func:`cluster_node`)."""
    cluster: ClusterNode | None = None
    if engine is None:
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        if feed is None and settings.redis_url is not None:
            cluster = cluster_node(settings)
            kwargs.update(backend=cluster.backend)
            feed = cluster.broker
        if feed is not None:
            kwargs.update(feed=feed)
        space = space_policy(settings)
        if settings.write_process:
            kwargs.update(writer=WriterProcess(settings.data_dir, synchronous=settings.synchronous.upper(),
                                               space=space))
        rules = load_rules(settings.rules) if settings.rules else default_rules(emulator=settings.emulator)
        engine = Engine(
            settings.data_dir,
            access=RulesAccess(rules),
            synchronous=settings.synchronous.upper(),
            indexes=settings.index_map(),
            require_indexes=settings.require_indexes,
            space=space,
            database_url=settings.database_url,
            **kwargs,
        )
    if cluster is not None:
        cluster.engine = engine
    authenticator = Authenticator(settings, clock=engine.clock)
    sse = SseEndpoint(engine, settings)
    rest = RestApi(engine, settings, authenticator, sse)
    monitor = Monitor(access=settings.access_log, denials=settings.log_denials or settings.emulator)
    rest.monitor = monitor
    engine.access.on_denied = monitor.denied_by_rules

    rechecks: set[asyncio.Task[None]] = set()
    problems: dict[str, str | None] = {}
    """What ``/healthz`` reports besides storage (``rules``: the rules file did not reload)."""

    def on_rules_change(ns: str | None) -> None:
        """Listens and streams whose callers lost read access are revoked."""
        async def recheck() -> None:
            await sse.recheck(ns)
            if hasattr(ws_endpoint, "recheck"):
                await ws_endpoint.recheck(ns)
            await yjs_endpoint.recheck(ns)

        task = asyncio.get_running_loop().create_task(recheck())
        rechecks.add(task)
        task.add_done_callback(rechecks.discard)

    engine.access.on_change(on_rules_change)

    def on_lost(ns: str) -> None:
        """This process missed commits of ``ns`` for good: its clients start over."""
        log.error("namespace %s: restarting its realtime clients after missed commits", ns)
        ws_endpoint.restart(ns)
        sse.end_streams(ns)
        yjs_endpoint.drop(ns)

    engine.on_lost = on_lost

    def on_dropped(ns: str) -> None:
        """``ns`` was dropped: its listeners hear ``null``, then start over on the new namespace."""
        ws_endpoint.drop(ns)
        sse.drop(ns)
        yjs_endpoint.drop(ns)

    engine.on_dropped = on_dropped
    if isinstance(engine.feed, OrderedFeed):
        engine.feed.on_lost = on_lost

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop = asyncio.Event()
        monitor.bind(asyncio.get_running_loop())
        watcher = None
        if settings.rules is not None:
            watcher = asyncio.create_task(watch_rules(settings.rules.resolve(), engine, stop,
                                                      lambda problem: problems.__setitem__("rules", problem)))
        if cluster is not None:
            await cluster.broker.start()
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
            if cluster is not None:
                await cluster.close()

    @get("/healthz")
    async def healthz() -> Response[dict[str, Any]]:
        """200 while this process can serve reads and writes (``status`` ``degraded``: Redis is
        down, changes from other nodes arrive by the head poll); 503 and ``error`` when it cannot."""
        health: dict[str, Any] = {"status": "ok", "pid": os.getpid()}
        if engine.writer_pid is not None:
            health["writer_pid"] = engine.writer_pid
        if cluster is not None:
            problem = await cluster.report(health)
        elif settings.database_url is not None:
            problem = await asyncio.to_thread(engine.backend.check)  # type: ignore[attr-defined]
            health["postgresql"] = {"ok": problem is None}
        else:
            problem = storage_problem(engine.data_dir)
        if problem is not None:
            health.update(status="error", error=problem)
            return Response(health, status_code=503)
        if problems.get("rules"):  # serving, with the rules the file had before it broke
            health.update(status="degraded", rules={"ok": False, "error": problems["rules"]})
        return Response(health)

    @asgi("/", is_mount=True, copy_scope=False)
    async def rest_api(scope: Any, receive: Any, send: Any) -> None:
        await rest(scope, receive, send)

    handlers: list[Any] = [healthz, rest_api]

    # --- WebSocket transport at /.ws (rtdb/server/ws.py) ---
    ws_endpoint = WsEndpoint(engine, settings, authenticator)
    ws_endpoint.monitor = monitor
    handlers.append(ws_endpoint.route())
    # --- end WebSocket transport ---
    # --- long-polling at /.lp (rtdb/server/lp.py), which upgrades to /.ws ---
    lp_endpoint = LpEndpoint(ws_endpoint, settings)
    handlers.append(lp_endpoint.route())
    # --- Yjs documents at /.yjs/<path> (rtdb/server/yjs.py, issue 16) ---
    yjs_endpoint = YjsEndpoint(engine, settings, authenticator)
    # --- the console at / and its API under /.console/api, /metrics (rtdb/server/console.py) ---
    handlers += console.handlers
    app = RtdbApp(
        rest,
        route_handlers=handlers,
        lifespan=[lifespan],
        request_max_body_size=None,
        openapi_config=OpenAPIConfig(title="rtdb console API", version="1", path=f"{console.API}/schema",
                                     render_plugins=[JsonRenderPlugin()]),
        logging_config=None,
    )
    app.state.console = console.Console(engine, settings, authenticator, monitor,
                                        Sources(engine=engine, monitor=monitor, ws=ws_endpoint, lp=lp_endpoint,
                                                sse=sse))
    app.state.engine = engine
    app.state.sse = sse
    app.state.settings = settings
    app.state.ws = ws_endpoint
    app.state.lp = lp_endpoint
    app.state.yjs = yjs_endpoint
    app.yjs = yjs_endpoint
    app.state.cluster = cluster
    return app


class RtdbApp(Litestar):
    """The litestar app with a short way in for REST: an HTTP request for a ``.json`` path
    goes straight to :class:`RestApi` (where the ``/`` mount would take it anyway), past
    litestar's middleware and routing, which cost about a tenth of a lone REST write."""

    def __init__(self, rest: RestApi, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rest = rest
        self.yjs: YjsEndpoint | None = None  # Yjs documents (issue 16): any path under /.yjs/


    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(console.STATIC_PREFIX):
            await console.console_file(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].endswith(".json") and not scope["path"].startswith(CONSOLE):
            await self.rest(scope, receive, send)
            return
        if self.yjs is not None and scope["type"] == "websocket" and scope["path"].startswith(YJS_PREFIX):
            await self.yjs(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class ClusterNode:
    """What makes a server one node of a cluster (`--redis-url`): the PostgreSQL backend all nodes
    share, and the Redis broker that carries commits between them, named after the cluster."""

    def __init__(self, backend: Any, broker: Any) -> None:
        self.backend = backend
        self.broker = broker
        self.engine: Engine | None = None

    async def heads(self, names: list[str]) -> dict[str, tuple[str, int]]:
        """The head poll: ``(epoch, seq)`` of the open namespaces, one query."""
        result: dict[str, tuple[str, int]] = await asyncio.to_thread(self.backend.heads, names)
        return result

    async def report(self, health: dict[str, Any]) -> str | None:
        """Fill ``health`` with this node's view of PostgreSQL and Redis; why it cannot serve, if so."""
        problem: str | None = await asyncio.to_thread(self.backend.check)
        redis_ok = self.broker.is_subscribed() and self.broker.is_publishing()
        stats = self.broker.stats
        health.update(
            node=self.broker.node_id,
            postgresql={"ok": problem is None},
            redis={"ok": redis_ok, "reconnects": stats.reconnects, "unsent": stats.unsent,
                   "read_from_log": stats.read_from_log, "head_fills": stats.head_fills, "lost": stats.lost},
        )
        if problem is None and not redis_ok:
            health["status"] = "degraded"
            health["warning"] = "Redis is unreachable: changes from other nodes arrive by the head poll"
        return problem

    async def close(self) -> None:
        await self.broker.aclose()
        self.backend.close()


def cluster_node(settings: Settings) -> ClusterNode:
    """The backend and broker of a node (blocking: reads the cluster's identity, creating the
    schema if it is missing; ``ValueError`` if PostgreSQL cannot be reached)."""
    from rtdb.core.errors import Unavailable
    from rtdb.realtime.redis_broker import RedisBroker
    from rtdb.storage.postgres import PostgresBackend

    assert settings.database_url is not None and settings.redis_url is not None
    backend = PostgresBackend(settings.database_url)
    try:
        prefix = settings.redis_prefix or f"rtdb:{backend.cluster_id()}"
    except Unavailable as exc:
        backend.close()
        raise ValueError(f"--database-url: {exc.message}") from None
    node: ClusterNode

    async def head(names: list[str]) -> dict[str, tuple[str, int]]:
        return await node.heads(names)

    broker = RedisBroker(settings.redis_url, prefix=prefix, head=head, head_poll_s=settings.head_poll_s,
                         node_id=settings.node_id)
    node = ClusterNode(backend, broker)
    return node


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
