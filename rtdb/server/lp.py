"""Firebase's HTTP long-polling transport at ``/.lp`` and its upgrade to WebSocket.

The browser SDK starts on long-polling when an earlier WebSocket of the page's
origin failed (or localStorage is unusable), and always with ``forceLongPolling()``.
Every request is a ``GET`` loaded as a ``<script>`` (JSONP):

* ``start=t&cb=N``: opens a session. The answer defines ``pLPCommand``/``pRTLPCB``
  (forwarding to the page's ``pLPCommandN``/``pRTLPCBN``), hands out the session's
  ``id`` and ``pw`` and carries packet 0, the handshake.
* ``id&pw&ser`` (a poll), optionally with segments ``seg<i>``/``ts<i>``/``d<i>``: the
  client's messages, JSON in web-safe base64 cut into numbered segments. The server
  holds at most one poll per session (``HOLD_S``) and answers it with numbered
  packets ``pRTLPCB(n,[...])`` as messages are queued; a new request releases the
  held one.
* ``dframe=t``: a page whose unload handler sends ``disconn=t``, which ends the session.

A session is a :class:`~rtdb.server.ws.Connection`, exactly as for ``/.ws``: the same
requests, rules, outbox and onDisconnect. It ends on ``disconn``, on a new session
naming it in ``ls=``, when the client aborts its held poll and sends nothing for
``ABORT_GRACE_S``, or after ``idle_s`` without a request.

The upgrade: the client opens ``/.ws?v=5&s=<session id>``; the native WebSocket
protocol attaches it as the session's :class:`Secondary`, which speaks first
(``a``), answers pings and buffers the client's data messages until the
long-polling ``n`` ("end of transmission") is processed. Then, in one step, the
last long-polling packet gets ``n`` and ``pLPCommand('close', pN)``, the
connection's outbox is drained by the socket from then on, and the buffered
messages run, after everything that came over long-polling.

With ``--workers N`` the worker that opened a session owns it; session ids end in
``w<worker>``. A request for a session of another worker is forwarded to the owner
over its private Unix socket (:class:`Forwarder`; the upgrade socket is spliced
through by :mod:`rtdb.server.wsprotocol`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import parse_qsl

from litestar.handlers import asgi

from rtdb.protocol.codec import Frames
from rtdb.protocol.framing import DEFAULT_MAX_MESSAGE_CHARS, FrameAssembler, is_count_frame
from rtdb.server.settings import Settings
from rtdb.server.ws import Connection, WsEndpoint

log = logging.getLogger("rtdb.lp")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HOLD_S = 20.0
"""How long a poll is held with nothing to send (below the client's 25 s keep-alive)."""
ABORT_GRACE_S = 3.0
"""A client that aborted its held poll and sent nothing since is gone (its frame was removed)."""
HOLE_TIMEOUT_S = 30.0
"""A missing segment that has not arrived after this long never will: the session ends."""
UPGRADE_TIMEOUT_S = 60.0
"""The client acknowledged the switch on the socket but its long-polling ``n`` never came."""
MAX_SEGMENT_CHARS = 1870
MAX_BUFFERED_CHARS = DEFAULT_MAX_MESSAGE_CHARS * 4 // 3 + 4096
"""Base64 characters of unassembled segments a session may hold (one largest message)."""
MAX_SEGMENT_AHEAD = MAX_BUFFERED_CHARS // 1000
"""How far past the next expected segment number a segment may be."""
MAX_SESSIONS = 100_000
"""Long-polling sessions one process keeps; more starts get 503 until some end."""
MAX_SECONDARY_CHARS = DEFAULT_MAX_MESSAGE_CHARS
"""Characters of data messages an upgrading socket may buffer before the switch."""

JS_HEADERS = [
    (b"content-type", b"application/javascript; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
    (b"access-control-allow-origin", b"*"),
]
HTML_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
]
FORWARDED = "x-rtdb-forwarded"

SWITCH_ACK = '{"t":"c","d":{"t":"a","d":{}}}'
END_TRANSMISSION: Frames = ('{"t":"c","d":{"t":"n","d":{}}}',)
PONG = '{"t":"c","d":{"t":"o","d":null}}'
CLOSE = "pLPCommand('close');"

_CB = re.compile(r"\d{1,16}")
_NUMBER = re.compile(r"\d{1,10}")
_B64 = re.compile(r"[A-Za-z0-9_\-.]{1,%d}" % MAX_SEGMENT_CHARS)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def new_credential() -> str:
    """A session password: 128 random bits, alphanumeric (it goes into URLs and JS literals)."""
    return secrets.token_hex(16)


def ascii_json(text: str) -> str:
    """``text`` (JSON) with every non-ASCII character as a ``\\u`` escape: the script's charset
    stops mattering, and U+2028/U+2029 are legal in any JavaScript."""
    if text.isascii():
        return text
    return _NON_ASCII.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        code -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))
    return "\\u%04x" % code


def message_text(frames: Frames) -> str:
    """One queued message as a single JSON text (WebSocket framing undone)."""
    if len(frames) == 1:
        return frames[0]
    return "".join(frames[1:]) if is_count_frame(frames[0]) else "".join(frames)


class BadSegments(ValueError):
    """The client's segments cannot be a message: the session ends."""


class LpSession:
    """One long-polling session: its connection, the segments not yet assembled, the packet
    numbers sent and the poll being held."""

    def __init__(self, endpoint: LpEndpoint, lp_id: str, connection: Connection) -> None:
        self.endpoint = endpoint
        self.id = lp_id
        self.pw = new_credential()
        self.connection = connection
        self.next_pn = 1  # 0 is the handshake, in the start answer
        self.segments: dict[int, tuple[int, str]] = {}
        self.segment_chars = 0
        self.next_seg = 0
        self.hole_since: float | None = None
        self.max_ser = -1
        self.held: asyncio.Future[str] | None = None
        self.last_seen = time.monotonic()
        self.aborted_at: float | None = None
        self.ended = False  # no more requests are taken; the last answer says close
        self.secondary: Secondary | None = None
        self.upgraded = False
        self.final: list[Frames] | None = None  # the last packet, once upgraded
        self._release_soon = False
        self._inbox: deque[str] = deque()  # decoded messages not yet taken by the connection
        self._inbox_chars = 0
        self._paused = False
        connection.outbox.on_ready = self._wake
        connection.on_pause = self._pause

    @property
    def sid(self) -> str:
        return self.connection.session.session_id

    # -- answers --------------------------------------------------------------------
    def answer(self) -> str:
        """The JavaScript for a request answered now: queued messages as one packet, then
        ``close`` if the session is over."""
        if self.upgraded:
            batch, self.final = self.final or [], None
            closing = True
        else:
            batch = self.connection.outbox.take()
            closing = self.ended or self.connection.outbox.closed
        parts = []
        if batch:
            pn = self.next_pn
            self.next_pn += 1
            parts.append(f"pRTLPCB({pn},[{','.join(ascii_json(message_text(f)) for f in batch)}]);")
        if closing:
            self._end()
            last = self.next_pn - 1
            parts.append(f"pLPCommand('close',{last});" if last else CLOSE)
        return "\n".join(parts)

    def _wake(self) -> None:
        """The outbox got a message (or closed): answer the held poll after this loop turn, so
        that what one event queues (a listen's data and its ``ok``) travels together."""
        if self.held is not None and not self._release_soon:
            self._release_soon = True
            asyncio.get_running_loop().call_soon(self._release)
        if self.connection.outbox.closed and not self.upgraded:
            self._end()

    def _release(self) -> None:
        self._release_soon = False
        held, self.held = self.held, None
        if held is not None and not held.done():
            held.set_result(self.answer())
            self.last_seen = time.monotonic()

    # -- requests -------------------------------------------------------------------
    async def poll(self, params: dict[str, str], receive: Receive) -> str | None:
        """A poll, maybe carrying segments. Returns the answer, or ``None`` if the client went
        away while it was held."""
        now = time.monotonic()
        self.last_seen = now
        self.aborted_at = None
        if self.held is not None:  # the client sent a new request: the held one is answered now
            self._release()
        ser = params.get("ser", "")
        serial = int(ser) if _NUMBER.fullmatch(ser) else -1
        try:
            messages = self.ingest(params, now)
        except BadSegments as exc:
            log.info("long-polling session %s: %s; closing it", self.id, exc)
            self.connection.abort(1002)
            return self.answer()
        self._inbox.extend(messages)
        self._inbox_chars += sum(map(len, messages))
        if self._inbox_chars > MAX_BUFFERED_CHARS:
            log.info("long-polling session %s: sends more than it lets the server answer; closing it", self.id)
            self.connection.abort(1008)
            return self.answer()
        self._deliver()
        if self.ended or self.upgraded or len(self.connection.outbox):
            return self.answer()
        if serial < self.max_ser:  # older than a poll seen before: never hold it
            return self.answer()
        self.max_ser = serial
        held = self.held = asyncio.get_running_loop().create_future()
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({held, gone}, timeout=self.endpoint.hold_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if held.done():
            return cast(str | None, held.result())
        if self.held is held:
            self.held = None
        held.cancel()
        self.last_seen = time.monotonic()
        if gone in done:
            self.aborted_at = self.last_seen
            return None
        return self.answer()

    def ingest(self, params: dict[str, str], now: float) -> list[str]:
        """Buffer this request's segments; return the messages they complete, in segment order."""
        i = 0
        while f"seg{i}" in params:
            seg, total, data = params.get(f"seg{i}", ""), params.get(f"ts{i}", ""), params.get(f"d{i}", "")
            if not (_NUMBER.fullmatch(seg) and _NUMBER.fullmatch(total) and _B64.fullmatch(data)):
                raise BadSegments(f"malformed segment {i}")
            number, count = int(seg), int(total)
            if count < 1 or count > MAX_SEGMENT_AHEAD or number - self.next_seg > MAX_SEGMENT_AHEAD:
                raise BadSegments(f"segment {number} of {count} is out of range")
            if number >= self.next_seg and number not in self.segments:
                self.segments[number] = (count, data)
                self.segment_chars += len(data)
                if self.segment_chars > MAX_BUFFERED_CHARS:
                    raise BadSegments("too much unassembled data")
            i += 1
        out: list[str] = []
        segments = self.segments
        while self.next_seg in segments:
            count = segments[self.next_seg][0]
            span = range(self.next_seg, self.next_seg + count)
            if any(k not in segments for k in span):
                break
            if any(segments[k][0] != count for k in span):
                raise BadSegments("the segments of one message disagree on its length")
            b64 = "".join(segments.pop(k)[1] for k in span)
            self.segment_chars -= len(b64)
            self.next_seg += count
            try:
                raw = base64.b64decode(b64.replace(".", "=").encode("ascii"), altchars=b"-_", validate=True)
                out.append(raw.decode("utf-8"))
            except (binascii.Error, ValueError):
                raise BadSegments("a message is not base64 of UTF-8 text") from None
        self.hole_since = now if segments else None  # waiting for the rest: time since the last segment
        return out

    def _deliver(self) -> None:
        """Feed the connection the client's messages, in order, while it takes them (it pauses
        when too many of its requests are unanswered; the rest wait here, in order)."""
        inbox = self._inbox
        while inbox and not self._paused and not self.ended and not self.upgraded:
            text = inbox.popleft()
            self._inbox_chars -= len(text)
            if _is_end_transmission(text):
                self.end_transmission()
            else:
                self.connection.feed(text)

    def _pause(self, paused: bool) -> None:
        self._paused = paused
        if not paused:
            self._deliver()

    # -- the upgrade ------------------------------------------------------------------
    def end_transmission(self) -> None:
        """The client's long-polling ``n``: everything it sent over long-polling has been
        processed; the socket takes over."""
        secondary = self.secondary
        if secondary is None or self.upgraded:
            return  # a duplicate ``n``, or the socket went away: stay on long-polling
        connection = self.connection
        outbox = connection.outbox
        outbox.send(END_TRANSMISSION)
        self.final = outbox.take()
        self.upgraded = True
        self.endpoint.forget(self)
        secondary.promote()
        if self.held is not None:
            self._release()

    def _end(self) -> None:
        """Take no more requests: the connection closes and its onDisconnect writes run (unless
        the socket took the connection over)."""
        if self.ended:
            return
        self.ended = True
        self.endpoint.forget(self)
        if self.secondary is not None and not self.upgraded:
            self.secondary.reset()
        if not self.upgraded:
            self.endpoint.finish(self.connection)

    def sweep(self, now: float) -> None:
        if self.held is None and (
            now - self.last_seen > self.endpoint.idle_s
            or self.aborted_at is not None and now - self.aborted_at > ABORT_GRACE_S
        ):
            log.info("long-polling session %s: the client is gone", self.id)
            self._end()
        elif self.hole_since is not None and now - self.hole_since > HOLE_TIMEOUT_S:
            log.info("long-polling session %s: a segment never came; closing it", self.id)
            self.connection.abort(1002)
        elif self.secondary is not None and self.secondary.acked_at is not None \
                and now - self.secondary.acked_at > UPGRADE_TIMEOUT_S:
            log.info("long-polling session %s: the upgrade never completed; closing it", self.id)
            self.connection.abort(1002)


class Secondary:
    """A WebSocket opened to upgrade a long-polling session (``/.ws?s=<session id>``), until
    the switch. ``write`` sends one text frame; ``on_promote`` hands it the connection;
    ``on_reset`` makes it send a reset and close."""

    def __init__(self, session: LpSession, host: str, write: Callable[[str], None],
                 on_promote: Callable[[Connection, list[str]], None], on_reset: Callable[[str], None]) -> None:
        self.session = session
        self.host = host
        self._write = write
        self._on_promote = on_promote
        self._on_reset = on_reset
        self._assembler = FrameAssembler()
        self.buffered: list[str] = []
        self._chars = 0
        self.acked_at: float | None = None
        write(SWITCH_ACK)  # the server speaks first; the client answers with pings

    def receive(self, frame: str) -> bool:
        """One text frame from the socket; ``False`` when the socket must close."""
        text = self._assembler.feed(frame)
        if text is None:
            return True
        control = _control(text)
        if control is not None:
            kind = control.get("t") if isinstance(control, dict) else None
            if kind is None:
                return False
            if kind == "p":
                self._write(PONG)
            elif kind == "a" and self.acked_at is None:
                self.acked_at = time.monotonic()
            return True
        self._chars += len(text)
        if self._chars > MAX_SECONDARY_CHARS:
            return False
        self.buffered.append(text)
        return True

    def promote(self) -> None:
        buffered, self.buffered = self.buffered, []
        self._on_promote(self.session.connection, buffered)

    def reset(self) -> None:
        self._on_reset(self.host)

    def detach(self) -> None:
        """The socket closed before the switch: the session stays on long-polling."""
        if self.session.secondary is self:
            self.session.secondary = None


MAX_CONTROL_CHARS = 256  # the SDK's control messages are a few dozen characters


def _control(text: str) -> object | None:
    """The ``d`` of a control message (``{"t": "c", ...}``, with any JSON spacing), or
    ``None`` when ``text`` is a data message. Only short texts are parsed: a control
    message is never long, and a data message is parsed once, by the connection."""
    if len(text) > MAX_CONTROL_CHARS or not text.lstrip().startswith("{"):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("t") != "c":
        return None
    return message.get("d")


def _is_end_transmission(text: str) -> bool:
    if '"n"' not in text:  # most messages are data: no parse
        return False
    control = _control(text)
    return isinstance(control, dict) and control.get("t") == "n"


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class LpEndpoint:
    """The long-polling sessions of one app."""

    def __init__(self, ws: WsEndpoint, settings: Settings, *, hold_s: float = HOLD_S) -> None:
        self.ws = ws
        self.settings = settings
        self.hold_s = hold_s
        self.idle_s = float(settings.lp_idle_timeout_s)
        self.sessions: dict[str, LpSession] = {}
        self.by_sid: dict[str, LpSession] = {}
        self.forwarder: Forwarder | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        ws.lp = self

    def route(self) -> Any:
        @asgi("/.lp", copy_scope=False)
        async def long_polling(scope: Scope, receive: Receive, send: Send) -> None:
            await self(scope, receive, send)

        return long_polling

    # -- sessions ----------------------------------------------------------------------
    def forget(self, session: LpSession) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        if self.by_sid.get(session.sid) is session:
            del self.by_sid[session.sid]

    def finish(self, connection: Connection) -> None:
        connection.close()
        task = asyncio.get_running_loop().create_task(connection.finish())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def upgrade_target(self, sid: str) -> LpSession | None:
        """The live long-polling session a ``/.ws?s=`` socket wants to upgrade."""
        session = self.by_sid.get(sid)
        if session is None or session.ended or session.upgraded or session.secondary is not None:
            return None
        return session

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.connection.abort(1012)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        for session in list(self.sessions.values()):
            session.sweep(now)
        self._arm()

    def _arm(self) -> None:
        if self._sweeper is None and self.sessions:
            period = max(0.2, min(5.0, self.idle_s / 4, ABORT_GRACE_S / 2))
            self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    # -- HTTP ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "GET":
            await _respond(send, 405, b"Long-polling takes GET requests\n", [(b"allow", b"GET")])
            return
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        lp_id = params.get("id", "")
        if self.forwarder is not None and lp_id and not _header(scope, FORWARDED):
            owner = self.ws.owner_of(lp_id)
            if owner is not None and owner != self.ws.worker:
                await self.forwarder.forward(owner, scope, receive, send)
                return
        if params.get("start") == "t":
            await self._start(scope, params, send)
        elif params.get("dframe") == "t":
            await self._dframe(params, send)
        elif params.get("disconn") == "t":
            session = self._session(params)
            if session is not None and not session.upgraded:
                session._end()
            await _respond(send, 200, b"", JS_HEADERS)
        elif lp_id:
            await self._poll(params, receive, send)
        else:
            await _respond(send, 400, b"Not a long-polling request: expected start=t, or id and pw\n",
                           [(b"content-type", b"text/plain; charset=utf-8")])

    def _session(self, params: dict[str, str]) -> LpSession | None:
        session = self.sessions.get(params.get("id", ""))
        if session is None or not secrets.compare_digest(session.pw, params.get("pw", "")):
            return None
        return session

    async def _start(self, scope: Scope, params: dict[str, str], send: Send) -> None:
        cb = params.get("cb", "")
        if not _CB.fullmatch(cb):
            await _respond(send, 400, b"Invalid long-polling callback id (cb): expected digits\n",
                           [(b"content-type", b"text/plain; charset=utf-8")])
            return
        if len(self.sessions) >= MAX_SESSIONS:
            await _respond(send, 503, b"Too many long-polling sessions; try again later\n",
                           [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"10")])
            return
        host = _header(scope, "host")
        connection = self.ws.open(params, host)
        session = LpSession(self, self.ws.new_id(6), connection)
        hello = connection.outbox.take()
        self.sessions[session.id] = session
        self.by_sid[session.sid] = session
        self._arm()
        body = (
            "function pLPCommand(c, a1, a2, a3, a4) {\n"
            f'parent.window["pLPCommand{cb}"] && parent.window["pLPCommand{cb}"](c, a1, a2, a3, a4);\n'
            "}\n"
            "function pRTLPCB(pN, data) {\n"
            f'parent.window["pRTLPCB{cb}"] && parent.window["pRTLPCB{cb}"](pN, data);\n'
            "}\n"
            f"pLPCommand('start','{session.id}','{session.pw}');\n"
            f"pRTLPCB(0,[{','.join(ascii_json(message_text(f)) for f in hello)}]);\n"
        )
        await _respond(send, 200, body.encode("ascii"), JS_HEADERS)

    async def _dframe(self, params: dict[str, str], send: Send) -> None:
        session = self._session(params)
        script = ""
        if session is not None:  # only the server's own alphanumeric id and pw go into the page
            script = (
                "<script>\nfunction EnvSendPing(u){try{var x=new XMLHttpRequest();x.open('GET',u,false);"
                "x.send(null);}catch(e){}}\n"
                f"function EnvDisconnect(){{EnvSendPing('/.lp?disconn=t&id={session.id}&pw={session.pw}');}}\n"
                "if(window.addEventListener)window.addEventListener('unload',EnvDisconnect,false);\n"
                "else if(window.attachEvent)window.attachEvent('onunload',EnvDisconnect);\n</script>"
            )
        body = f"<!doctype html><html><body>{script}</body></html>\n"
        await _respond(send, 200, body.encode("ascii"), HTML_HEADERS)

    async def _poll(self, params: dict[str, str], receive: Receive, send: Send) -> None:
        session = self._session(params)
        if session is None or session.ended:
            await _respond(send, 200, CLOSE.encode(), JS_HEADERS)
            return
        answer = await session.poll(params, receive)
        if answer is not None:
            await _respond(send, 200, answer.encode("ascii"), JS_HEADERS)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: str) -> str:
    key = name.encode()
    for k, v in scope.get("headers", []):
        if k.lower() == key:
            return str(v.decode("latin-1"))
    return ""


class Forwarder:
    """Sends a long-polling request to the worker that owns its session, over that worker's
    Unix socket, and relays its answer (``--workers``)."""

    def __init__(self, socket_of: Callable[[int], str]) -> None:
        import httpx

        self._httpx = httpx
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines would log the passwords
        self.socket_of = socket_of
        self._clients: dict[int, Any] = {}

    def _client(self, worker: int) -> Any:
        client = self._clients.get(worker)
        if client is None:
            httpx = self._httpx
            # no pool limit: every held poll of the owner's sessions that landed here holds a connection
            transport = httpx.AsyncHTTPTransport(uds=self.socket_of(worker), limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64))
            client = self._clients[worker] = httpx.AsyncClient(transport=transport, timeout=None)
        return client

    async def forward(self, worker: int, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {"host": _header(scope, "host") or "localhost", FORWARDED: "1"}
        url = f"http://rtdb{scope['path']}?{query}"

        async def relay() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._client(worker).get(url, headers=headers)
            keep = [(k.encode(), v.encode()) for k, v in response.headers.items()
                    if k.lower() in ("content-type", "cache-control", "access-control-allow-origin")]
            return response.status_code, keep, response.content

        answer = asyncio.ensure_future(relay())
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if answer not in done:
            answer.cancel()  # closes the connection to the owner: it sees the abort too
            return
        try:
            status, keep, body = answer.result()
        except (OSError, self._httpx.HTTPError):  # the owner is gone, and its sessions with it
            await _respond(send, 200, CLOSE.encode(), JS_HEADERS)
            return
        await _respond(send, status, body, keep)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
