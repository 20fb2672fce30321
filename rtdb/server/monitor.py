"""What the server knows about its own activity: request and denial counters (read by
``/metrics`` and the console), and a ring of recent entries that the console's log shows live.

Cheap on the hot path: a request bumps one counter; an :class:`Entry` is built only while
someone looks (a console log stream is open, or ``--access-log``). Denials are rarer and
always recorded, with the rule trace that decided (:meth:`Monitor.denied` runs where the
rules run, maybe on a store's writer thread, so it hands the entry to the event loop).

``--log-denials`` (always on in emulator mode) writes denials to the ``rtdb.denied`` logger,
at most :data:`DENIAL_LINES_PER_S` lines a second (the rest are counted and summarized);
``--access-log`` writes one ``rtdb.access`` line per REST request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rtdb.core import path as paths
from rtdb.core.auth import Caller

access_log = logging.getLogger("rtdb.access")
denial_log = logging.getLogger("rtdb.denied")

KEEP = 500
"""Recent entries kept for a console that opens its log."""
DENIAL_LINES_PER_S = 10


@dataclass(slots=True)
class Entry:
    id: int
    t: int
    """Epoch milliseconds."""
    kind: str
    """``request`` or ``denied``."""
    transport: str
    method: str
    path: str
    ns: str
    status: int = 0
    ms: float = 0.0
    bytes: int = 0
    uid: str | None = None
    rule: str | None = None
    trace: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcome(status: int) -> str:
    """A request's outcome as the metrics label it."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status >= 500:
        return "error"
    return "refused"


def uid_of(caller: Caller | None) -> str | None:
    if caller is None:
        return None
    if caller.admin:
        return "(admin)"
    auth = caller.auth or {}
    uid = auth.get("uid") if isinstance(auth, dict) else None
    return str(uid) if uid is not None else None


def deciding_rule(trace: list[str]) -> str | None:
    """The last rule the trace shows evaluated (``/rules/… at …: expression → result``): the one
    whose result decided; else the trace's last line."""
    for line in reversed(trace):
        if line.startswith("/rules/"):
            return line
    return trace[-1] if trace else None


class Monitor:
    """Counters and the recent-entries ring of one server process."""

    def __init__(self, *, access: bool = False, denials: bool = False, keep: int = KEEP,
                 clock: Callable[[], float] = time.time) -> None:
        self.access = access
        self.log_denials = denials
        self.clock = clock
        self.requests: dict[tuple[str, str], int] = {}
        """Requests answered, by ``(transport, outcome)``."""
        self.denied = 0
        self.recent: deque[Entry] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self._watchers: list[Callable[[Entry], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._window = 0  # the second the denial lines below count in
        self._lines = 0
        self._suppressed = 0

    @property
    def watching(self) -> bool:
        """Whether a request should become an :class:`Entry` (someone reads them)."""
        return self.access or bool(self._watchers)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- recording ------------------------------------------------------------------
    def count(self, transport: str, status: int) -> None:
        """An HTTP request was answered with ``status``."""
        self._bump(transport, outcome(status))

    def received(self, transport: str) -> None:
        """A realtime request arrived (WebSocket and long-polling: counted, not logged)."""
        self._bump(transport, "received")

    def _bump(self, transport: str, what: str) -> None:
        key = (transport, what)
        self.requests[key] = self.requests.get(key, 0) + 1

    def request(self, transport: str, method: str, path: str, ns: str, status: int, started: float,
                nbytes: int, caller: Caller | None = None) -> None:
        """A request was answered (``started``: its ``time.perf_counter()``). Counted always;
        an entry only while :attr:`watching`."""
        self.count(transport, status)
        if not self.watching:
            return
        ms = (time.perf_counter() - started) * 1000
        entry = Entry(next(self._ids), int(self.clock() * 1000), "request", transport, method, path, ns, status,
                      round(ms, 3), nbytes, uid_of(caller))
        if self.access:
            access_log.info("%s %s ns=%s %d %dB %.2fms", method, path, ns, status, nbytes, ms,
                            extra={"fields": entry.to_json()})
        self._publish(entry)

    def denied_by_rules(self, ns: str, op: str, path: paths.Path, caller: Caller, trace: list[str]) -> None:
        """The rules refused ``op`` at ``path`` (any thread)."""
        with self._lock:
            self.denied += 1
            entry = Entry(next(self._ids), int(self.clock() * 1000), "denied", "", op, paths.to_str(path), ns, 403,
                          uid=uid_of(caller), rule=deciding_rule(trace), trace=list(trace))
            line = self._may_log() if self.log_denials else False
        if line:
            denial_log.warning("denied %s %s ns=%s uid=%s: %s", op, entry.path, ns, entry.uid, entry.rule,
                               extra={"fields": entry.to_json()})
        loop = self._loop
        if loop is None or _on_loop(loop):
            self._publish(entry)
        else:
            loop.call_soon_threadsafe(self._publish, entry)

    def _may_log(self) -> bool:
        now = int(time.monotonic())
        if now != self._window:
            if self._suppressed:
                denial_log.warning("%d more denials in the last second were not logged", self._suppressed)
            self._window, self._lines, self._suppressed = now, 0, 0
        if self._lines >= DENIAL_LINES_PER_S:
            self._suppressed += 1
            return False
        self._lines += 1
        return True

    def _publish(self, entry: Entry) -> None:
        self.recent.append(entry)
        for watcher in list(self._watchers):
            try:
                watcher(entry)
            except Exception:  # noqa: BLE001 - one broken watcher must not stop the others
                logging.getLogger("rtdb.server").exception("a log watcher failed")

    # -- reading --------------------------------------------------------------------
    def watch(self, callback: Callable[[Entry], None]) -> Callable[[], None]:
        """Call ``callback`` with each new entry (on the event loop) until the returned function is called."""
        self._watchers.append(callback)

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class JsonFormatter(logging.Formatter):
    """``--log-format json``: one JSON object per line (time, level, logger, message, and the
    entry's fields for access and denial lines); times in UTC."""

    converter = time.gmtime  # type: ignore[assignment]  # a builtin: not bound as a method, whatever mypy infers

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if v is not None and k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)
