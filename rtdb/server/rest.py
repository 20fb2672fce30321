"""Firebase's REST API: translate ``/<path>.json`` requests into engine calls and back.

Nothing is decided here: paths, values and queries are parsed by ``rtdb.core``,
reads and writes (and their checks) happen in the engine, and errors go
through the one mapping in :mod:`rtdb.server.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

import msgspec

from rtdb.core import path as paths
from rtdb.core import query as queries
from rtdb.core.auth import Caller
from rtdb.core.errors import (
    InvalidData,
    InvalidPath,
    InvalidQuery,
    PermissionDenied,
    PreconditionFailed,
    TooBig,
)
from rtdb.core.hash import etag
from rtdb.core.indexspec import child_spec, order_child
from rtdb.core.value import TOO_DEEP, to_plain
from rtdb.engine.engine import Engine
from rtdb.realtime.hub import Listener
from rtdb.rules.coverage import render_html
from rtdb.server import inspect, namespaces
from rtdb.server.auth import Authenticator, bearer_token
from rtdb.server.errors import http_error
from rtdb.server.monitor import Monitor
from rtdb.server.settings import Settings
from rtdb.server.sse import SseEndpoint
from rtdb.storage.lone import ALONE

JSON_TYPE = "application/json; charset=utf-8"
CORS_ORIGIN = (b"access-control-allow-origin", b"*")  # Firebase's REST API answers any origin
CORS_EXPOSE = (b"access-control-expose-headers", b"ETag")  # so browser code can read it for if-match
NO_CACHE = (b"cache-control", b"no-cache")  # as Firebase's responses say
METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS")
GET_ONLY_PARAMS = ("shallow", "callback", "download", "format")
RULES_PATH = "/.settings/rules.json"
WRITE_SIZE_LIMITS = ("tiny", "small", "medium", "large", "unlimited")
_TIMEOUT = re.compile(r"([0-9]{1,7})(ms|s|min)")  # ASCII digits, few enough for int()
LONE_EXTENSION = "rtdb.lone"
"""The ASGI scope extension by which the HTTP server tells whether a request is its only work."""
LONE_METHODS = ("PUT", "POST", "PATCH", "DELETE")
LONE_READS = ("GET", "HEAD")
LONE_BODY_MAX = 64 * 1024
"""A lone write with a larger body goes to the writer thread all the same: applying it takes long."""
_encoder = msgspec.json.Encoder()
log = logging.getLogger("rtdb.server.rest")


def encode(value: Any, *, pretty: bool = False) -> bytes:
    body = _encoder.encode(value)
    return msgspec.json.format(body, indent=2) if pretty else body


class Response:
    """What the REST API answers: status, body and extra headers."""

    __slots__ = ("body", "status_code", "media_type", "headers", "head")

    def __init__(self, body: bytes, *, status_code: int = 200, media_type: str | None = JSON_TYPE,
                 headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status_code = status_code
        self.media_type = media_type
        self.headers = headers
        self.head = False  # a HEAD request: the headers of the GET, no body

    async def send(self, send: Any) -> None:
        raw = [(b"content-length", str(len(self.body)).encode()), CORS_ORIGIN, CORS_EXPOSE, NO_CACHE]
        if self.media_type and self.status_code not in (204, 304):
            raw.append((b"content-type", self.media_type.encode()))
        if self.headers:
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if self.head else self.body})


class Request:
    """The parts of an ASGI HTTP request the REST API reads."""

    __slots__ = ("method", "raw_path", "query_string", "headers", "_receive", "lone")

    def __init__(self, scope: dict[str, Any], receive: Any) -> None:
        self.method: str = scope["method"]
        self.raw_path: str = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        self.query_string: str = scope["query_string"].decode("latin-1")
        self.headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self._receive = receive
        self.lone: Callable[[], bool] | None = scope.get("extensions", {}).get(LONE_EXTENSION)

    async def receive(self) -> Any:
        return await self._receive()

    async def stream(self, first: Any = None) -> Any:
        """The body's chunks (after ``first``, a message already received, if given)."""
        while True:
            message, first = first or await self._receive(), None
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = msgspec.json.format(_encoder.encode({"error": message}), indent=2) + b"\n"
    return Response(body, status_code=status, headers=headers)


def error_reply(exc: BaseException) -> Response:
    """The REST reply to any exception a request raised (and to a stream that could not open):
    the one place REST turns errors into statuses and bodies."""
    if isinstance(exc, PreconditionFailed):  # if-match: the current value and its ETag, as firebase-admin expects
        if exc.etag is None:  # the caller may write but not read: no value, no ETag (a hash of it)
            return error_response(412, "ETag mismatch: the value at this path has changed")
        return Response(encode(to_plain(exc.current)), status_code=412, headers={"ETag": exc.etag})
    status, message = http_error(exc)
    return error_response(status, message)


class RestApi:
    def __init__(self, engine: Engine, settings: Settings, authenticator: Authenticator, sse: SseEndpoint) -> None:
        self.engine = engine
        self.settings = settings
        self.auth = authenticator
        self.sse = sse
        self._warned: set[tuple[str, paths.Path, str, paths.Path]] = set()
        self.monitor = Monitor()
        """Counts the requests (and logs them while someone watches): the app sets the server's."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The raw ASGI entry point (mounted at ``/``; litestar's per-request machinery
        is skipped on this hot path)."""
        started = time.perf_counter()
        request = Request(scope, receive)
        if request.method == "OPTIONS":
            await self._preflight(request).send(send)
            return
        if request.method == "GET" and "text/event-stream" in request.headers.get("accept", ""):
            opened = await self._open_stream(request)
            if isinstance(opened, Response):
                await opened.send(send)
            else:
                stream, caller = opened
                self.monitor.count("sse", 200)
                await self.sse.serve(stream, caller, receive, send)
            return
        if self._is_lone(request):
            token = ALONE.set(True)  # the store may run this read or write on this thread (rtdb.storage.lone)
            try:
                response = await self.handle(request)
            finally:
                ALONE.reset(token)
        else:
            response = await self.handle(request)
        response.head = request.method == "HEAD"
        await response.send(send)
        monitor = self.monitor
        if monitor.watching:
            pairs = parse_qsl(request.query_string) if request.query_string else []
            ns = self.settings.namespace_of(dict(pairs), request.headers.get("host"))
            monitor.request("rest", request.method, request.raw_path, ns, response.status_code, started,
                            len(response.body))
        else:
            monitor.count("rest", response.status_code)

    def _is_lone(self, request: Request) -> bool:
        """Whether this read or write is all this process has to do now: the HTTP server
        says no other request is under way and no WebSocket is open
        (:mod:`rtdb.server.httpprotocol`); for a write, also no other process writes the
        namespace's file and the body is small."""
        if request.lone is None:
            return False
        if request.method in LONE_READS:
            return request.lone()
        if request.method not in LONE_METHODS or self.engine.shared:
            return False
        declared = request.headers.get("content-length", "0")
        return declared.isdigit() and int(declared) <= LONE_BODY_MAX and request.lone()

    @staticmethod
    def _preflight(request: Request) -> Response:
        """CORS preflight: browsers may call the REST API from any origin, as Firebase allows."""
        asked = request.headers.get("access-control-request-headers", "")
        return Response(b"", status_code=204, media_type=None, headers={
            "Access-Control-Allow-Methods": ", ".join(METHODS),
            "Access-Control-Allow-Headers": asked or "Authorization, Content-Type",
            "Access-Control-Max-Age": "3600",
        })

    async def _open_stream(self, request: Request) -> Response | tuple[Listener, Caller]:
        try:
            ns, path, params, caller = self._target(request)
            query = queries.parse_rest(params)
            if not self.settings.emulator and not self.engine.is_indexed(ns, path, query):
                # as a GET: the read check first, so only a reader learns about the index
                if not await self.engine.check_read(ns, path, caller=caller, query=query):
                    raise PermissionDenied("Permission denied")
                self.engine.check_indexed(ns, path, query)
            stream, _ = await self.sse.open(ns, path, caller, query)
            return stream, caller
        except Exception as exc:
            return error_reply(exc)

    def _target(self, request: Request, *, allow_priority: bool = False) -> tuple[str, paths.Path, dict[str, str],
                                                                                 Caller]:
        """Namespace, path, parameters and caller of a ``/<path>.json`` request."""
        raw_path = request.raw_path
        if not raw_path.endswith(".json"):
            raise InvalidPath("Invalid path: REST paths end in .json")
        path = paths.parse(raw_path[: -len(".json")], decode=True, allow_priority=allow_priority)
        ns, params, caller = self._context(request)
        return ns, path, params, caller

    def _context(self, request: Request) -> tuple[str, dict[str, str], Caller]:
        """Namespace, parameters and caller of any request."""
        pairs = parse_qsl(request.query_string, keep_blank_values=True) if request.query_string else []
        params = dict(pairs)
        if sum(name == "orderBy" for name, _ in pairs) > 1:
            raise InvalidQuery("orderBy may be given only once")
        ns = self.settings.namespace_of(params, request.headers.get("host"))
        caller = self.auth.caller(bearer_token(request.headers.get("authorization")), params)
        return ns, params, caller

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except Exception as exc:  # never leak details, never crash the connection
            return error_reply(exc)

    async def _handle(self, request: Request) -> Response:
        if request.raw_path == RULES_PATH:
            return await self._rules(request)
        if request.raw_path.startswith("/.") or request.raw_path.endswith(inspect.UPLOAD_SUFFIX):
            tool = await self._tool(request)
            if tool is not None:
                return tool
        if not request.raw_path.endswith(".json"):
            return error_response(404, "Not found: REST paths end in .json")
        method = request.method.upper()
        if method not in METHODS:
            return error_response(405, f"Method {request.method} is not supported",
                                  {"Allow": ", ".join(METHODS)})
        ns, path, params, caller = self._target(request, allow_priority=True)
        if method == "HEAD":
            method = "GET"
        if method == "POST":
            override = request.headers.get("x-http-method-override") or params.get("x-http-method-override")
            if override:
                method = override.upper()
                if method not in ("GET", "PUT", "POST", "PATCH", "DELETE"):
                    raise InvalidData(f"Unsupported method override {override!r}")
        silent = params.get("print") == "silent"
        pretty = params.get("print") == "pretty"
        if "print" in params and params["print"] not in ("silent", "pretty"):
            raise InvalidQuery("print must be 'pretty' or 'silent'")
        if method == "GET":
            if "if-match" in request.headers:
                raise InvalidQuery("if-match applies to writes; a GET takes if-none-match")
            return await self._get(request, ns, path, params, caller, silent, pretty)
        self._check_write_params(params)
        # the ETag of what was written: asked for, or after a conditional write (firebase-admin)
        wants_etag = "if-match" in request.headers or _asks_etag(request)
        if method == "DELETE":
            result = await self.engine.set(ns, path, None, caller=caller, if_match=request.headers.get("if-match"))
            return self._ok(None, silent, pretty, {"ETag": result.etag} if wants_etag else None)
        body = await self._body(request)
        if method == "PUT":
            result = await self.engine.set(ns, path, body, caller=caller, if_match=request.headers.get("if-match"))
            headers = {"ETag": result.etag} if wants_etag else None
            return self._ok(to_plain(result.node), silent, pretty, headers)
        if method == "POST":
            key, result = await self.engine.push(ns, path, body, caller=caller)
            return self._ok({"name": key}, silent, pretty, {"ETag": result.etag} if wants_etag else None)
        if method == "PATCH":
            if body is None:  # firebase-tools' database:remove deletes a path this way
                await self.engine.set(ns, path, None, caller=caller)
                return self._ok(None, silent, pretty)
            if not isinstance(body, dict):
                raise InvalidData(
                    "Invalid data; couldn't parse JSON object. Are you sending a JSON object with valid key names?"
                )
            result = await self.engine.update(ns, path, body, caller=caller)
            return self._ok(to_plain(result.node) if result.node is not None else body, silent, pretty)
        raise InvalidData(f"Unsupported method {method}")

    async def _rules(self, request: Request) -> Response:
        """``GET/PUT /.settings/rules.json``: the namespace's rules as source text; admins only."""
        ns, params, caller = self._context(request)
        if not caller.admin:
            raise PermissionDenied("Permission denied")
        if request.method in ("GET", "HEAD"):
            return Response(self.engine.rules_source(ns).encode(), media_type=JSON_TYPE)
        if request.method != "PUT":
            raise InvalidData("Use GET or PUT on /.settings/rules.json")
        source = (await self._raw_body(request)).decode("utf-8", errors="replace")
        await self.engine.deploy_rules(ns, source, caller=caller, dry_run=params.get("dryRun") == "true")
        return Response(b'{"status":"ok"}')

    async def _tool(self, request: Request) -> Response | None:
        """The emulator's tool endpoints (:mod:`rtdb.server.inspect`), else ``None``."""
        raw_path = request.raw_path
        if raw_path == inspect.DATABASES_PATH:
            _, _, caller = self._context(request)
            return Response(encode(inspect.databases(self.engine, self.settings, caller)))
        if raw_path in (inspect.COVERAGE_JSON_PATH, inspect.COVERAGE_HTML_PATH):
            ns, _, caller = self._context(request)
            report = await inspect.coverage(self.engine, self.settings, ns, caller)
            if raw_path == inspect.COVERAGE_JSON_PATH:
                return Response(encode(report))
            return Response(render_html(report).encode(), media_type="text/html; charset=utf-8")
        if raw_path in (namespaces.NAMESPACE_PATH, namespaces.COMPACT_PATH):
            ns, _, caller = self._context(request)
            return Response(encode(await namespaces.handle(self.engine, raw_path, request.method, ns, caller)))
        if raw_path == inspect.TRIGGERS_PATH:
            ns, _, caller = self._context(request)
            if request.method != "POST":
                raise InvalidData("Use POST on /.settings/functionTriggers.json")
            inspect.accept_triggers(ns, caller)
            await self._raw_body(request)
            return Response(b'{"status":"ok"}')
        if raw_path.endswith(inspect.UPLOAD_SUFFIX):
            if request.method != "POST":
                raise InvalidData("Use POST to upload")
            path = inspect.upload_path(raw_path)
            ns, params, caller = self._context(request)
            self._check_write_params(params)
            boundary = inspect.boundary_of(request.headers.get("content-type"))
            value = await inspect.read_upload(request.stream(), boundary, self.settings.max_body_bytes)
            return self._ok(await inspect.upload(self.engine, ns, path, value, caller), False, False)
        return None

    async def _get(
        self, request: Request, ns: str, path: paths.Path, params: dict[str, str], caller: Caller,
        silent: bool, pretty: bool,
    ) -> Response:
        if path and path[-1] == paths.PRIORITY_KEY:
            node = await self.engine.get(ns, path[:-1], caller=caller)
            value = node.get(".priority") if isinstance(node, dict) else None
            return self._ok(value, silent, pretty)
        timeout = _parse_timeout(params.get("timeout"))
        if params.get("shallow") not in (None, "false"):
            if params["shallow"] != "true":
                raise InvalidQuery("shallow must be true or false")
            window = queries.parse_shallow(params)
            try:
                leaf, keys = await asyncio.wait_for(self.engine.shallow(ns, path, caller=caller, window=window),
                                                    timeout)
            except TimeoutError:
                raise InvalidQuery("The read took longer than the timeout") from None
            listing: Any = {k: True for k in keys} if keys else to_plain(leaf)
            return self._ok(listing, silent, pretty)
        query = queries.parse_rest(params)
        require_index = not self.settings.emulator  # Firebase refuses unindexed REST queries; its emulator serves them
        if not require_index and not self.engine.is_indexed(ns, path, query):
            self._warn_unindexed(ns, path, query)
        headers: dict[str, str] = {}
        wants_etag = query is None and (_asks_etag(request) or "if-none-match" in request.headers)
        export = params.get("format") == "export"
        plain = not (export or wants_etag)
        try:
            read = self.engine.read(ns, path, caller=caller, query=query, plain=plain, require_index=require_index,
                                    raw=not wants_etag)  # only encoded: stored JSON passes through
            node = (await asyncio.wait_for(read, timeout)).node
        except TimeoutError:
            raise InvalidQuery("The read took longer than the timeout") from None
        if wants_etag:
            tag = etag(node)
            if request.headers.get("if-none-match") == tag:
                return Response(b"", status_code=304, media_type=None, headers={"ETag": tag})
            headers["ETag"] = tag
        value = node if plain or export else to_plain(node)
        if params.get("download"):
            headers["Content-Disposition"] = _attachment(params["download"])
        callback = params.get("callback")
        if callback is not None:
            if not re.fullmatch(r"[A-Za-z_$][\w$.]*", callback):
                raise InvalidQuery("callback must be a JavaScript identifier")
            body = callback.encode() + b"(" + encode(value) + b");"
            return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)
        return self._ok(value, silent, pretty, headers)

    def _ok(self, value: Any, silent: bool, pretty: bool, headers: dict[str, str] | None = None) -> Response:
        if silent:
            return Response(b"", status_code=204, media_type=None, headers=headers)
        return Response(encode(value, pretty=pretty), headers=headers)

    async def _body(self, request: Request) -> Any:
        raw = await self._raw_body(request)
        if not raw.strip():
            raise InvalidData("Error: No data supplied.")
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise InvalidData("Invalid data; couldn't parse JSON object, array, or value.") from None
        except RecursionError:  # nested far beyond MAX_DEPTH: refused before it is even built
            raise InvalidData(TOO_DEEP) from None

    async def _raw_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooBig(f"Request body larger than {limit} bytes")
        first = await request.receive()
        if first["type"] == "http.request" and not first.get("more_body", False):  # the usual case: one message
            body: bytes = first.get("body", b"")
            if len(body) > limit:
                raise TooBig(f"Request body larger than {limit} bytes")
            return body
        chunks = []
        size = 0
        async for chunk in request.stream(first):
            size += len(chunk)
            if size > limit:
                raise TooBig(f"Request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _warn_unindexed(self, ns: str, path: paths.Path, query: queries.QuerySpec | None) -> None:
        """Emulator mode serves an unindexed query, as Firebase's emulator does, and says so once."""
        if query is None:
            return
        what = (ns, path, query.order_by, query.child)
        if what in self._warned or len(self._warned) >= 1000:
            return
        self._warned.add(what)
        log.warning('namespace %s: a query on "%s" is served without an index; production mode refuses it '
                    '(add ".indexOn": "%s" to the rules)', ns, paths.to_str(path), child_spec(order_child(query) or ()))

    @staticmethod
    def _check_write_params(params: dict[str, str]) -> None:
        for name in GET_ONLY_PARAMS:
            if name in params:
                raise InvalidQuery(f"{name} applies to reads (GET) only")
        limit = params.get("writeSizeLimit")
        if limit is not None and limit not in WRITE_SIZE_LIMITS:
            raise InvalidQuery("writeSizeLimit must be one of tiny, small, medium, large, unlimited")


def _asks_etag(request: Request) -> bool:
    return request.headers.get("x-firebase-etag", "").lower() == "true"


def _attachment(name: str) -> str:
    """``Content-Disposition`` for ``download=name``: an ASCII ``filename`` and, for other
    characters, RFC 6266's percent-encoded ``filename*``. Control characters (CR, LF…)
    could end the header: they are refused."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidQuery("download must be a file name without control characters")
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _parse_timeout(raw: str | None) -> float:
    """``timeout=`` in seconds (Firebase allows up to 15 minutes, the default)."""
    if raw is None:
        return 900.0
    m = _TIMEOUT.fullmatch(raw)
    if not m:
        raise InvalidQuery("timeout must look like 100ms, 3s or 1min")
    n, unit = int(m.group(1)), m.group(2)
    seconds = n / 1000 if unit == "ms" else n if unit == "s" else n * 60
    if seconds <= 0 or seconds > 900:
        raise InvalidQuery("timeout must be more than 0 and at most 15min")
    return float(seconds)

