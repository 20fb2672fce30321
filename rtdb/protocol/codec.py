"""Encoders and decoders for the wire messages, built once.

Server side: :func:`decode_client` (client text → typed message) and the
``encode_*`` helpers (typed message → frames). Client side (SDK, tests):
:func:`decode_server` and :func:`encode_client`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import UNSET

from rtdb.core.path import Path
from rtdb.core.value import LONE_SURROGATE, TOO_DEEP
from rtdb.protocol.errors import BadRequest, ProtocolError
from rtdb.protocol.framing import MAX_FRAME_CHARS, split_message
from rtdb.protocol.messages import (
    ClientMessage,
    DataPush,
    HandshakeBody,
    Hello,
    IncomingServerData,
    IncomingServerMessage,
    MergePush,
    Pong,
    Push,
    PushBody,
    RawClientData,
    Response,
    ResponseBody,
    ServerControl,
    ServerData,
    ServerMessage,
    ServerPush,
)

Frames = tuple[str, ...]

_client_decoder = msgspec.json.Decoder(ClientMessage)
_raw_decoder = msgspec.json.Decoder(RawClientData)
_server_decoder = msgspec.json.Decoder(IncomingServerMessage)
_push_decoder = msgspec.json.Decoder(ServerPush)
_response_body_decoder = msgspec.json.Decoder(ResponseBody)
_encoder = msgspec.json.Encoder()

PONG_FRAMES: Frames = (_encoder.encode(ServerControl(Pong())).decode(),)


# ------------------------------------------------------------------ server side


def decode_client(text: str | bytes) -> ClientMessage | None:
    """Decode one complete client message.

    Returns ``None`` for envelopes the server may ignore (unknown ``t``).
    Raises :class:`BadRequest` for a data request that carries ``r`` but is
    otherwise invalid (unknown action, bad body), :class:`ProtocolError` for
    anything that is not a message at all.
    """
    try:
        return _client_decoder.decode(text)
    except msgspec.DecodeError as exc:
        status, error = "invalid_request", f"invalid request: {exc}"
    except RecursionError:  # msgspec stops at Python's recursion limit: far beyond MAX_DEPTH
        status, error = "invalid_data", TOO_DEEP
        head = _SDK_HEAD.match(_as_str(text))  # the SDKs' key order: no need to scan the whole message
        if head:
            raise BadRequest(error, request_id=int(head[1]), action=head[2], status=status) from None
    raw, problem = _envelope(text)
    if raw is None:
        raise ProtocolError(f"undecodable message: {error}")
    if problem is not None:
        status, error = "invalid_data", problem
    if raw.t not in ("c", "d"):
        return None
    if raw.t == "c":
        return None  # unknown control message: ignored, as the client does
    if raw.d is not UNSET and raw.d.r is not UNSET:
        action = raw.d.a if raw.d.a is not UNSET else None
        raise BadRequest(error, request_id=raw.d.r, action=action, status=status)
    raise ProtocolError(f"invalid message: {error}")


def _envelope(text: str | bytes) -> tuple[RawClientData | None, str | None]:
    """``t``, ``r`` and ``a`` of a message the full decoder refused (``None`` if even they
    cannot be read), and what kept them from being read directly: a nesting too deep to
    decode, or a lone surrogate (JSON.stringify writes one as ``\\ud800``)."""
    problem: str | None = None
    cut = neutral = False
    while True:
        try:
            return _raw_decoder.decode(text), problem
        except msgspec.DecodeError:
            if neutral:
                return None, None
            # every surrogate escape made U+FFFD, just to learn which request to answer
            text, count = _SURROGATE_ESCAPE.subn(r"\1\\ufffd", _as_str(text))
            if not count:
                return None, None
            neutral, problem = True, problem or LONE_SURROGATE
        except RecursionError:
            if cut:
                return None, None
            text = cut_deep(_as_str(text), ENVELOPE_DEPTH)
            cut, problem = True, TOO_DEEP


def _as_str(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", "replace")


_SURROGATE_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

ENVELOPE_DEPTH = 3
"""How deep ``r`` and ``a`` lie: ``{"t": "d", "d": {"r": …, "a": …, "b": {…}}}``."""

_SDK_HEAD = re.compile(
    r'\s*\{\s*"t"\s*:\s*"d"\s*,\s*"d"\s*:\s*\{\s*"r"\s*:\s*(\d{1,20})\s*,\s*"a"\s*:\s*"(\w{1,20})"', re.ASCII
)
_SCAN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+')


def cut_deep(text: str, max_depth: int) -> str:
    """``text`` (JSON) with every array or object that opens deeper than ``max_depth``
    replaced by ``null``, so a message nested too deep to decode still tells which
    request it was. Strings are skipped whole; runs of brackets are counted at once."""
    out: list[str] = []
    depth = 0
    kept = 0  # text[kept:] is still to be copied
    for match in _SCAN.finditer(text):
        run = match.group()
        if run[0] == '"':
            continue
        n = len(run)
        if run[0] in "[{":
            if depth <= max_depth < depth + n:
                cut = match.start() + max_depth - depth
                out.append(text[kept:cut])
                out.append("null")
            depth += n
        else:
            if depth - n <= max_depth < depth:
                kept = match.start() + depth - max_depth
            depth -= n
    if depth <= max_depth:  # else it never closed: what is left is cut off
        out.append(text[kept:])
    return "".join(out)


def encode(message: ServerMessage) -> bytes:
    return _encoder.encode(message)


def frames_of(message: ServerMessage, *, max_frame_chars: int = MAX_FRAME_CHARS) -> Frames:
    """One server message as WebSocket text frames (split when long)."""
    return split_message(_encoder.encode(message).decode("utf-8"), max_frame_chars=max_frame_chars)


def handshake_frames(*, ts: int, host: str, session_id: str) -> Frames:
    return frames_of(ServerControl(Hello(HandshakeBody(ts=ts, v="5", h=host, s=session_id))))


def response_frames(request_id: int, status: str = "ok", data: Any = "") -> Frames:
    return frames_of(ServerData(Response(request_id, ResponseBody(status, data))))


def push_frames(push: Push) -> Frames:
    return frames_of(ServerData(push))


def data_push_frames(path: Path, data: Any, tag: int | None = None) -> Frames:
    """``d`` (overwrite) push at ``path``; ``data`` is a node or ``msgspec.Raw``."""
    return push_frames(DataPush(PushBody(push_path(path), data, UNSET if tag is None else tag)))


def merge_push_frames(path: Path, data: dict[str, Any], tag: int | None = None) -> Frames:
    """``m`` (merge) push: ``data`` maps relative paths (``a/b``) to nodes."""
    return push_frames(MergePush(PushBody(push_path(path), data, UNSET if tag is None else tag)))


def push_path(path: Path) -> str:
    """Push paths go without a leading slash, as Google's server sends them."""
    return "/".join(path)


PRIORITY_KEY = ".priority"


# ------------------------------------------------------------------ client side


def encode_client(message: ClientMessage) -> str:
    return _encoder.encode(message).decode("utf-8")


def decode_server(text: str | bytes) -> ServerControl | Response | ServerPush:
    """Decode a server message (for the Python SDK and tests)."""
    try:
        message = _server_decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid server message: {exc}") from None
    if isinstance(message, ServerControl):
        return message
    assert isinstance(message, IncomingServerData)
    payload = message.d
    try:
        if payload.r is not UNSET:
            return Response(payload.r, _response_body_decoder.decode(payload.b))
        if payload.a is not UNSET:
            envelope = b'{"a":' + _encoder.encode(payload.a) + b',"b":' + bytes(payload.b) + b"}"
            return _push_decoder.decode(envelope)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid server message: {exc}") from None
    raise ProtocolError("server data message has neither r nor a")
