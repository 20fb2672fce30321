"""A small long-polling (``/.lp``) client for tests and the bench, written from
shared/specs/long-polling.md §3: start, strict parsing of the JS answers, packets in
pN order, web-safe base64 with ``.`` padding in 1840-character ``seg/ts/d`` segments,
at most two requests in flight, a poll loop, ``request()`` and push collection."""

from __future__ import annotations

import base64
import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

SEGMENT = 1840          # MAX_PAYLOAD_SIZE = 1870 - 30
URL_DATA = 1870         # MAX_URL_DATA_SIZE
HEADER = 30             # SEG_HEADER_SIZE

_WRAPPERS = re.compile(
    r'function pLPCommand\(c, a1, a2, a3, a4\) \{\s*parent\.window\["pLPCommand(\w+)"\] && '
    r'parent\.window\["pLPCommand\1"\]\(c, a1, a2, a3, a4\);\s*\}\s*'
    r'function pRTLPCB\(pN, data\) \{\s*parent\.window\["pRTLPCB\1"\] && '
    r'parent\.window\["pRTLPCB\1"\]\(pN, data\);\s*\}\s*'
)
_COMMAND = re.compile(r"pLPCommand\(((?:'[A-Za-z0-9]*'|\d+)(?:\s*,\s*(?:'[A-Za-z0-9]*'|\d+))*)\);\s*")
_PACKET = re.compile(r"pRTLPCB\((\d+)\s*,\s*")


class MalformedAnswer(AssertionError):
    """The server's JavaScript is not the grammar of spec §3.5."""


@dataclass
class Answer:
    cb: str | None = None
    commands: list[list[str | int]] = field(default_factory=list)
    packets: list[tuple[int, list[Any]]] = field(default_factory=list)


def parse_answer(body: str) -> Answer:
    """Parse a /.lp answer: optional wrappers, then pLPCommand/pRTLPCB statements only."""
    out = Answer()
    pos = 0
    m = _WRAPPERS.match(body)
    if m:
        out.cb, pos = m.group(1), m.end()
    decoder = json.JSONDecoder()
    while True:
        while pos < len(body) and body[pos].isspace():
            pos += 1
        if pos == len(body):
            return out
        if (m := _COMMAND.match(body, pos)) is not None:
            args = [a.strip() for a in m.group(1).split(",")]
            out.commands.append([a[1:-1] if a.startswith("'") else int(a) for a in args])
            pos = m.end()
        elif (m := _PACKET.match(body, pos)) is not None:
            try:
                data, end = decoder.raw_decode(body, m.end())
            except json.JSONDecodeError as exc:
                raise MalformedAnswer(f"bad packet JSON at {m.end()}: {body!r}") from exc
            if not isinstance(data, list):
                raise MalformedAnswer(f"packet data is not an array: {body!r}")
            tail = re.compile(r"\s*\);").match(body, end)
            if tail is None:
                raise MalformedAnswer(f"unterminated pRTLPCB at {end}: {body!r}")
            out.packets.append((int(m.group(1)), data))
            pos = tail.end()
        else:
            raise MalformedAnswer(f"unexpected text at {pos}: {body[pos:pos + 80]!r}")


def encode(msg: Any) -> str:
    """JSON, UTF-8, web-safe base64 with '.' padding (the SDK's base64Encode)."""
    raw = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").replace("=", ".")


def split(b64: str) -> list[str]:
    return [b64[i:i + SEGMENT] for i in range(0, len(b64), SEGMENT)] or [""]


def pack(segs: list[tuple[int, int, str]]) -> tuple[str, list[tuple[int, int, str]]]:
    """Pack queued (seg, ts, d) into one URL tail as newRequest_ does; return (tail, rest)."""
    tail, i = "", 0
    while i < len(segs) and len(segs[i][2]) + HEADER + len(tail) <= URL_DATA:
        seg, ts, d = segs[i]
        tail += f"&seg{i}={seg}&ts{i}={ts}&d{i}={d}"
        i += 1
    return tail, segs[i:]


class LPClient:
    """One long-polling transport. ``start()`` then ``run()`` (a poll thread); ``send``/``request``."""

    def __init__(self, base_url: str, ns: str, *, ls: str | None = None, timeout: float = 30) -> None:
        self.base, self.ns, self.ls = base_url, ns, ls
        self.http = httpx.Client(base_url=base_url, timeout=timeout,
                                 limits=httpx.Limits(max_connections=4))
        self.cb = str(random.randint(1, 99))
        self.id = self.pw = ""
        self.handshake: dict[str, Any] = {}
        self.ser = random.randrange(10**8)
        self.next_seg = 0
        self.pending: list[tuple[int, int, str]] = []
        self.next_pn = 0
        self.buffered: dict[int, list[Any]] = {}
        self.messages: list[dict[str, Any]] = []    # every envelope, in pN order
        self.closed: list[str | int] | None = None
        self.in_flight = 0
        self.cond = threading.Condition()
        self.alive = False
        self.r = 0
        self.answers: list[httpx.Response] = []

    # -- start and answers
    def start(self) -> httpx.Response:
        q = f"start=t&ser={random.randrange(10**8)}&cb={self.cb}&v=5"
        if self.ls:
            q += f"&ls={self.ls}"
        resp = self.http.get(f"/.lp?{q}&ns={self.ns}")
        resp.raise_for_status()
        ans = parse_answer(resp.text)
        if ans.cb != self.cb or not ans.commands or ans.commands[0][0] != "start":
            raise MalformedAnswer(f"bad start answer: {resp.text!r}")
        _, self.id, self.pw = ans.commands[0]  # type: ignore[misc]
        self._take(ans)
        self.handshake = self.messages[0]["d"]["d"]
        self.alive = True
        return resp

    def _take(self, ans: Answer) -> None:
        with self.cond:
            for pn, data in ans.packets:
                self.buffered[pn] = data
            while self.next_pn in self.buffered:
                self.messages.extend(m for m in self.buffered.pop(self.next_pn) if m)
                self.next_pn += 1
            for c in ans.commands:
                if c[0] == "close":
                    self.closed, self.alive = c, False
            self.cond.notify_all()

    def url(self, extra: str = "") -> str:
        self.ser += 1
        return f"/.lp?id={self.id}&pw={self.pw}&ser={self.ser}&ns={self.ns}{extra}"

    def get(self, path: str) -> Answer:
        resp = self.http.get(path)
        self.answers.append(resp)
        resp.raise_for_status()
        ans = parse_answer(resp.text)
        self._take(ans)
        return ans

    # -- sending
    def queue(self, msg: Any) -> None:
        segs = split(encode(msg))
        with self.cond:
            for d in segs:
                self.pending.append((self.next_seg, len(segs), d))
                self.next_seg += 1
            self.cond.notify_all()

    def _poll_once(self, path: str) -> None:
        try:
            self.get(path)
        finally:
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

    def run(self) -> None:
        """Start the poll loop: one request when idle, two while segments wait (§3.7)."""
        def loop() -> None:
            while True:
                with self.cond:
                    while self.alive and self.in_flight >= (2 if self.pending else 1):
                        self.cond.wait()
                    if not self.alive:
                        return
                    tail, self.pending = pack(self.pending)
                    path = self.url(tail)   # ser in request order
                    self.in_flight += 1
                threading.Thread(target=self._guarded, args=(path,), daemon=True).start()
        self.loop = threading.Thread(target=loop, daemon=True)
        self.loop.start()

    def _guarded(self, path: str) -> None:
        try:
            self._poll_once(path)
        except Exception:  # noqa: BLE001 - a failed script load closes the transport (§3.11)
            with self.cond:
                self.alive = False
                self.cond.notify_all()

    def wait_for(self, pred: Any, timeout: float = 10) -> Any:
        with self.cond:
            ok = self.cond.wait_for(lambda: pred(self.messages), timeout=timeout)
        if not ok:
            raise TimeoutError(f"condition not met; messages={self.messages[-5:]} closed={self.closed}")
        return ok

    def request(self, action: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        with self.cond:
            self.r += 1
            r = self.r
        self.queue({"t": "d", "d": {"r": r, "a": action, "b": body}})
        found: list[dict[str, Any]] = []

        def done(msgs: list[dict[str, Any]]) -> bool:
            found[:] = [m["d"]["b"] for m in msgs if m.get("t") == "d" and m["d"].get("r") == r]
            return bool(found)
        self.wait_for(done, timeout)
        return found[0]

    def pushes(self, action: str = "d") -> list[dict[str, Any]]:
        with self.cond:
            return [m["d"]["b"] for m in self.messages
                    if m.get("t") == "d" and "r" not in m["d"] and m["d"].get("a") == action]

    def close(self) -> None:
        with self.cond:
            self.alive = False
            self.cond.notify_all()
        self.http.close()
