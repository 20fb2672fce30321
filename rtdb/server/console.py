"""The web console: its page at ``/`` and its admin API under ``/.console/api`` (litestar
controllers with msgspec types; OpenAPI at ``/.console/api/schema/openapi.json``), and
``GET /metrics``.

The page (``rtdb/server/console/static/``: plain HTML, JavaScript modules and CSS, no build
step, nothing from a CDN) browses data through the ordinary REST API with the admin token, and
uses this API for what REST has no word for: which namespaces exist, the changes of a
namespace as they commit (paths, and small values), the rules simulator, the live log of
requests and denials, and a JSON view of the metrics for its charts.

Access: in emulator mode everything is open, as the Emulator UI is; in production mode every
API call needs admin credentials — ``Authorization: Bearer TOKEN``, or ``?token=`` /
``?auth=`` for EventSource streams, which cannot send headers (401 otherwise). ``/metrics``
needs them too unless ``--metrics-public``. The page itself is public: it holds no data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path as FsPath
from typing import Any, Literal

import httpx
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromQuery, JSONBody
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from rtdb.core import path as paths
from rtdb.core.auth import Caller
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import RtdbError
from rtdb.core.value import to_plain
from rtdb.engine.engine import Engine, check_namespace
from rtdb.server.auth import Authenticator, bearer_token
from rtdb.server.errors import http_error
from rtdb.server.inspect import list_namespaces
from rtdb.server.metrics import CONTENT_TYPE, Sources, merge, registry_for, render
from rtdb.server.monitor import Entry, Monitor
from rtdb.server.settings import Settings

STATIC = FsPath(__file__).with_name("console") / "static"
API = "/.console/api"
STATIC_PREFIX = "/.console/static/"
LARGE_VALUE_BYTES = 16 * 1024
"""A changed value larger than this (as JSON) reaches the console as ``large: true``."""
MAX_QUEUED = 1000
"""Entries or changes a slow console stream may have waiting; past that it is closed."""
SMALL_VALUE_NODES = 2000
"""A changed value of more nodes than this is sent as ``large: true`` without being encoded."""
CHANGES_EVERY_S = 0.1
"""A console's change stream sends what committed at most this often."""
MAX_CHANGED_PATHS = 200
"""More changed paths than this in one window are sent as one change at ``/``."""
KEEPALIVE_S = 15.0

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".ico": "image/x-icon", ".json": "application/json"}


class Info(msgspec.Struct):
    mode: Literal["emulator", "production"]
    version: str
    node: str | None
    namespaces: list[str]
    default_namespace: str


class NewNamespace(msgspec.Struct):
    name: str


class Simulate(msgspec.Struct):
    ns: str
    op: Literal["read", "write", "update"]
    path: str = "/"
    auth: dict[str, Any] | None = None
    value: Any = None


class Decision(msgspec.Struct):
    allowed: bool
    trace: list[str]


class Connections(msgspec.Struct):
    ws: int
    lp: int
    sse: int


class Counters(msgspec.Struct):
    requests: int
    writes: int
    denied: int
    events: int


class MetricsView(msgspec.Struct):
    t: int
    connections: Connections
    counters: Counters


class Console:
    """What the console's handlers need, kept in ``app.state.console``."""

    def __init__(self, engine: Engine, settings: Settings, authenticator: Authenticator, monitor: Monitor,
                 sources: Sources) -> None:
        self.engine = engine
        self.settings = settings
        self.authenticator = authenticator
        self.monitor = monitor
        self.sources = sources
        self.registry = registry_for(sources)
        self.peers: Callable[[], list[str]] = lambda: []
        """With ``--workers``: the private sockets of the other workers (``/metrics`` sums them)."""

    def caller(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
        params = dict(connection.query_params)
        if "token" in params and "auth" not in params:
            params["auth"] = params["token"]
        try:
            return self.authenticator.caller(bearer_token(connection.headers.get("authorization")), params)
        except RtdbError as exc:
            raise _error(exc) from None

    def is_admin(self, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return self.settings.emulator or self.caller(connection).admin

    def metrics_view(self) -> MetricsView:
        requests = sum(self.monitor.requests.values())
        writes = sum(getattr(self.engine, "write_outcomes", {}).values())
        events = sum(getattr(getattr(holder, "metrics", None), "messages_queued", 0)
                     for holder in (getattr(self.sources.ws, "hub", None), getattr(self.sources.sse, "hub", None)))
        return MetricsView(int(time.time() * 1000), Connections(**self.sources.connections()),
                           Counters(requests, writes, self.monitor.denied, events))


def console_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Console:
    return connection.app.state.console  # type: ignore[no-any-return]


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: admin credentials, except in emulator mode."""
    if not console_of(connection).is_admin(connection):
        raise NotAuthorizedException("Admin credentials needed: the admin token as `Authorization: Bearer TOKEN`")


def error_reply(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    """Errors as the REST API gives them: ``{"error": message}``."""
    message = str(exc.detail)
    extra = exc.extra if isinstance(exc.extra, list) else []
    details = [str(e.get("message")) + (f" ({e['key']})" if e.get("key") else "") for e in extra
               if isinstance(e, dict) and e.get("message")]
    if details:
        message += ": " + "; ".join(details)
    return Response({"error": message}, status_code=exc.status_code, headers=exc.headers or None)


ERRORS: dict[int | type[Exception], Any] = {HTTPException: error_reply}


def _error(exc: BaseException) -> HTTPException:
    status, message = http_error(exc)
    return HTTPException(status_code=status, detail=message)


class ConsoleApi(Controller):
    path = API
    guards = [admin_only]
    tags = ["console"]
    exception_handlers = ERRORS

    @get("/info")
    async def info(self, request: Request[Any, Any, Any]) -> Info:
        """The server as the console shows it: mode, version, node and namespaces."""
        console = console_of(request)
        node = getattr(getattr(console.engine, "feed", None), "node_id", None)
        return Info("emulator" if console.settings.emulator else "production", _version(),
                    node if isinstance(node, str) else None, list_namespaces(console.engine),
                    console.settings.namespace)

    @post("/namespaces", status_code=201)
    async def create_namespace(self, request: Request[Any, Any, Any], data: JSONBody[NewNamespace]) -> NewNamespace:
        """Create (open) an empty namespace."""
        console = console_of(request)
        try:
            check_namespace(data.name)
            await console.engine.store(data.name)
        except Exception as exc:  # noqa: BLE001 - mapped to Firebase's status and message
            raise _error(exc) from None
        return data

    @post("/simulate", status_code=200)
    async def simulate(self, request: Request[Any, Any, Any], data: JSONBody[Simulate]) -> Decision:
        """What the namespace's rules decide for a read, set or update by ``auth`` at ``path``
        now (on the current data), with the trace of every rule evaluated. Nothing is written."""
        console = console_of(request)
        try:
            check_namespace(data.ns)
            path = paths.parse(data.path)
            decision = await console.engine.explain(data.ns, data.op, path, data.value,
                                                    caller=Caller(admin=False, auth=data.auth))
        except Exception as exc:  # noqa: BLE001 - mapped to Firebase's status and message
            raise _error(exc) from None
        return Decision(decision.allowed, list(decision.trace))

    @get("/metrics")
    async def metrics(self, request: Request[Any, Any, Any]) -> MetricsView:
        """The figures the console charts: open connections and running totals."""
        return console_of(request).metrics_view()

    @get("/log")
    async def log(self, request: Request[Any, Any, Any]) -> ServerSentEvent:
        """Server-sent events ``log``: the recent requests and denials, then each new one.
        Requests become entries only while a log stream is open (or ``--access-log``)."""
        console = console_of(request)
        queue: asyncio.Queue[Entry | None] = asyncio.Queue()
        for entry in list(console.monitor.recent):
            queue.put_nowait(entry)

        def seen(entry: Entry) -> None:
            queue.put_nowait(entry if queue.qsize() < MAX_QUEUED else None)

        stop = console.monitor.watch(seen)
        return ServerSentEvent(_stream(queue, "log", lambda e: msgspec.json.encode(e.to_json()).decode(), stop))

    @get("/changes")
    async def changes(self, request: Request[Any, Any, Any], ns: FromQuery[str]) -> ServerSentEvent:
        """Server-sent events ``change``: what committed in ``ns``, at most every
        ``CHANGES_EVERY_S``, as the paths changed (each once, the latest value) with their new
        values when small (else ``large: true``: read them if you show them). More than
        ``MAX_CHANGED_PATHS`` paths in one window come as one change at ``/`` (reload what you
        show). The feed's callback only keeps the ChangeSet: encoding happens here, at most
        every window, so an open console costs the write path next to nothing."""
        console = console_of(request)
        try:
            check_namespace(ns)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from None
        pending: list[ChangeSet] = []
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        flush_at: list[asyncio.TimerHandle] = []

        def flush() -> None:
            flush_at.clear()
            batch = pending[:]
            pending.clear()
            queue.put_nowait(_changes_json(batch) if queue.qsize() < MAX_QUEUED else None)

        def seen(changeset: ChangeSet) -> None:
            pending.append(changeset)
            if not flush_at:
                flush_at.append(loop.call_later(CHANGES_EVERY_S, flush))

        cancel = console.engine.feed.subscribe(ns, seen)

        def stop() -> None:
            cancel()
            for handle in flush_at:
                handle.cancel()

        return ServerSentEvent(_stream(queue, "change", str, stop))


def _within(node: Any, budget: int) -> bool:
    """Whether ``node`` has at most ``budget`` nodes (walks no further than that)."""
    stack = [node]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        top = stack.pop()
        if isinstance(top, dict):
            stack.extend(top.values())
    return True


def _changes_json(batch: list[ChangeSet]) -> str:
    latest: dict[paths.Path, Any] = {}
    for changeset in batch:
        for change in changeset.changes:
            latest.pop(change.path, None)  # re-inserted: the order of their last change
            latest[change.path] = change.new
            if len(latest) > MAX_CHANGED_PATHS:
                break
    seq = batch[-1].seq if batch else 0
    if len(latest) > MAX_CHANGED_PATHS:
        return json.dumps({"seq": seq, "changes": [{"path": "/", "large": True}]})
    out = []
    for path, node in latest.items():
        item: dict[str, Any] = {"path": paths.to_str(path)}
        value = to_plain(node) if _within(node, SMALL_VALUE_NODES) else None
        if value is None and node is not None or len(json.dumps(value, ensure_ascii=False)) > LARGE_VALUE_BYTES:
            item["large"] = True
        else:
            item["value"] = value
        out.append(item)
    return json.dumps({"seq": seq, "changes": out}, ensure_ascii=False)


async def _stream(
    queue: asyncio.Queue[Any], event: str, encode: Any, stop: Any,
) -> AsyncIterator[ServerSentEventMessage]:
    """The queue's items as events, a comment every ``KEEPALIVE_S``; ends (and unsubscribes)
    when the client goes or falls :data:`MAX_QUEUED` behind."""
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if item is None:  # too far behind: the page reconnects and starts over
                return
            yield ServerSentEventMessage(data=encode(item), event=event)
    finally:
        stop()


@get("/", include_in_schema=False, exception_handlers=ERRORS)
async def console_page() -> Response[bytes]:
    """The console's page."""
    return _static("index.html")


async def console_file(scope: Any, receive: Any, send: Any) -> None:
    """``GET /.console/static/<file>``: raw ASGI, called by ``RtdbApp`` before litestar's
    router (whose mount of the REST API at ``/`` would take any path it does not know exactly)."""
    name = scope["path"][len(STATIC_PREFIX):]
    file = (STATIC / name).resolve()
    if scope.get("method") not in ("GET", "HEAD") or not file.is_relative_to(STATIC.resolve()) or not file.is_file():
        body, status, media = b'{"error":"No such console file"}', 404, "application/json"
    else:
        body, status, media = file.read_bytes(), 200, _TYPES.get(file.suffix, "application/octet-stream")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", media.encode()), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache")]})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})


def _static(name: str) -> Response[bytes]:
    file = (STATIC / name).resolve()
    if not file.is_relative_to(STATIC.resolve()) or not file.is_file():
        raise NotFoundException(f"No console file {name}")
    return Response(file.read_bytes(), media_type=_TYPES.get(file.suffix, "application/octet-stream"),
                    headers={"Cache-Control": "no-cache"})


@get("/metrics", include_in_schema=False, exception_handlers=ERRORS)
async def metrics_text(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format; admin credentials unless ``--metrics-public``."""
    console = console_of(request)
    if not console.settings.metrics_public and not console.is_admin(request):
        raise NotAuthorizedException("Admin credentials needed for /metrics (or start with --metrics-public)")
    own = render(console.registry)
    peers = console.peers()
    if not peers or request.query_params.get("worker") == "self":
        return Response(own, media_type=CONTENT_TYPE)
    # --workers N: the other workers' figures over their private sockets, summed with ours
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    texts = [own.decode()] + [t for t in await asyncio.gather(*(_peer_metrics(p, headers, dict(request.query_params))
                                                                 for p in peers)) if t is not None]
    return Response(merge(texts), media_type=CONTENT_TYPE)


async def _peer_metrics(socket_path: str, headers: dict[str, str], params: dict[str, str]) -> str | None:
    """One worker's own figures (``None`` if it does not answer: it is restarting)."""
    try:
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket_path), timeout=2.0) as client:
            response = await client.get("http://worker/metrics", params={**params, "worker": "self"}, headers=headers)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rtdb")
    except Exception:  # noqa: BLE001 - running from a checkout without metadata
        return "0"


handlers = [ConsoleApi, console_page, metrics_text]
