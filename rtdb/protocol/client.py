"""The client's half of the wire protocol, sans I/O (for the Python SDK).

:class:`ClientProtocol` turns requests into the text frames a client sends
(split like the JS SDK: a count frame, then slices of 16384 characters) and
incoming server frames into typed messages (a count frame of at most six
characters announces that many frames). Request numbers keep growing across
sockets, as the JS SDK's do; the transport owns the socket and calls
:meth:`ClientProtocol.reset` when it opens a new one.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from rtdb.core.path import Path
from rtdb.protocol import messages as m
from rtdb.protocol.codec import decode_server, encode_client
from rtdb.protocol.errors import FramingError
from rtdb.protocol.framing import MAX_FRAME_CHARS, split_message

KEEPALIVE_FRAME = "0"

ServerEvent = m.ServerControl | m.Response | m.ServerPush

__all__ = [
    "KEEPALIVE_FRAME",
    "ClientProtocol",
    "ServerEvent",
    "request_path",
]


def request_path(path: Path) -> str:
    """Request paths are absolute: ``/a/b``; the root is ``/``."""
    return "/" + "/".join(path)


class ClientProtocol:
    __slots__ = ("_next_r", "_parts", "_remaining")

    def __init__(self) -> None:
        self._next_r = 1
        self._remaining = 0
        self._parts: list[str] = []

    def reset(self) -> None:
        """A new socket: forget any half-received message (request numbers go on)."""
        self._remaining = 0
        self._parts = []

    def next_request_id(self) -> int:
        r = self._next_r
        self._next_r += 1
        return r

    # -- outgoing ---------------------------------------------------------------------
    def frames(self, request: m.ClientRequest) -> tuple[str, ...]:
        return split_message(encode_client(m.ClientData(request)), max_frame_chars=MAX_FRAME_CHARS)

    def request(self, action: str, body: dict[str, Any]) -> tuple[int, m.ClientRequest]:
        """Build a numbered request for ``action`` from plain body fields."""
        r = self.next_request_id()
        return r, build_request(r, action, body)

    # -- incoming ---------------------------------------------------------------------
    def receive(self, frame: str) -> ServerEvent | None:
        """Feed one text frame; returns the completed message, if any."""
        if self._remaining:
            self._parts.append(frame)
            self._remaining -= 1
            if self._remaining:
                return None
            text = "".join(self._parts)
            self._parts = []
            return decode_server(text)
        if len(frame) <= 6 and frame.isascii() and frame.isdigit():
            count = int(frame)
            if count == 0:
                raise FramingError("the server sent a zero frame count")
            self._remaining = count
            return None
        return decode_server(frame)


def build_request(r: int, action: str, body: dict[str, Any]) -> m.ClientRequest:
    """A typed request from an action code and its body fields (``UNSET`` for absent ones)."""
    if action == "q":
        return m.Listen(r, m.ListenBody(body["p"], body.get("h", ""), body.get("q", UNSET), body.get("t", UNSET)))
    if action == "n":
        return m.Unlisten(r, m.UnlistenBody(body["p"], body.get("q", UNSET), body.get("t", UNSET)))
    if action == "p":
        return m.Put(r, m.PutBody(body["p"], body.get("d"), body.get("h", UNSET)))
    if action == "m":
        return m.Merge(r, m.MergeBody(body["p"], body["d"]))
    if action == "g":
        return m.Get(r, m.GetBody(body["p"], body.get("q", m.WireQuery())))
    if action == "o":
        return m.OnDisconnectPut(r, m.PutBody(body["p"], body.get("d")))
    if action == "om":
        return m.OnDisconnectMerge(r, m.MergeBody(body["p"], body["d"]))
    if action == "oc":
        return m.OnDisconnectCancel(r, m.CancelBody(body["p"], None))
    if action == "s":
        return m.Stats(r, m.StatsBody(body.get("c", {})))
    if action == "auth":
        return m.Auth(r, m.AuthBody(body["cred"]))
    if action == "gauth":
        return m.GAuth(r, m.AuthBody(body["cred"]))
    if action == "unauth":
        return m.Unauth(r)
    raise ValueError(f"unknown action {action!r}")
