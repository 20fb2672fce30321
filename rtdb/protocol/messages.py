"""Every wire message as a typed msgspec Struct (wire protocol v5, spec sections 2-4, 12).

Envelope: ``{"t": "d" | "c", "d": payload}``. Client data requests are tagged by
their action ``a``; control messages by their inner ``t``. Fields the client may
omit are ``UNSET`` (``msgspec.UNSET`` is never encoded), so a message re-encodes
the way it arrived.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import UNSET, Raw, Struct, UnsetType, field

# --------------------------------------------------------------------- query object


class WireQuery(Struct, omit_defaults=True):
    """The query object of ``q``/``n``/``g`` (spec 5.2). Absent fields are ``UNSET``;
    ``sp``/``ep`` may legitimately be ``null``."""

    sp: Any = UNSET
    sn: str | UnsetType = UNSET
    sin: bool | UnsetType = UNSET
    ep: Any = UNSET
    en: str | UnsetType = UNSET
    ein: bool | UnsetType = UNSET
    l: int | UnsetType = UNSET  # noqa: E741 - the wire name
    vf: Literal["l", "r"] | UnsetType = UNSET
    i: str | UnsetType = UNSET


# --------------------------------------------------------------- client -> server bodies


class StatsBody(Struct):
    c: dict[str, Any] = {}


class AuthBody(Struct):
    cred: str
    noauth: bool | UnsetType = UNSET
    authvar: dict[str, Any] | None | UnsetType = UNSET


class EmptyBody(Struct):
    pass


class AppCheckBody(Struct):
    token: str


class ListenBody(Struct):
    p: str
    h: str = ""
    q: WireQuery | UnsetType = UNSET
    t: int | UnsetType = UNSET


class UnlistenBody(Struct):
    p: str
    q: WireQuery | UnsetType = UNSET
    t: int | UnsetType = UNSET


class PutBody(Struct):
    p: str
    d: Any = None
    h: str | UnsetType = UNSET


class MergeBody(Struct):
    p: str
    d: dict[str, Any]


class GetBody(Struct):
    p: str
    q: WireQuery | UnsetType = UNSET


class CancelBody(Struct):
    p: str
    d: Any = None


# --------------------------------------------------------------------- client requests


class Request(Struct, tag_field="a"):
    """Base of every data request: ``{"r": n, "a": action, "b": body}``."""

    r: int


class Stats(Request, tag="s"):
    b: StatsBody = field(default_factory=StatsBody)


class Auth(Request, tag="auth"):
    b: AuthBody


class GAuth(Request, tag="gauth"):
    b: AuthBody


class Unauth(Request, tag="unauth"):
    b: EmptyBody = field(default_factory=EmptyBody)


class AppCheck(Request, tag="appcheck"):
    b: AppCheckBody


class UnAppCheck(Request, tag="unappeck"):
    """The SDK spells it ``unappeck``."""

    b: EmptyBody = field(default_factory=EmptyBody)


class UnAppCheckLong(UnAppCheck, tag="unappcheck"):
    """Accept the dictionary spelling too."""


class Listen(Request, tag="q"):
    b: ListenBody


class Unlisten(Request, tag="n"):
    b: UnlistenBody


class Put(Request, tag="p"):
    b: PutBody


class Merge(Request, tag="m"):
    b: MergeBody


class Get(Request, tag="g"):
    b: GetBody


class OnDisconnectPut(Request, tag="o"):
    b: PutBody


class OnDisconnectMerge(Request, tag="om"):
    b: MergeBody


class OnDisconnectCancel(Request, tag="oc"):
    b: CancelBody


ClientRequest = (
    Stats
    | Auth
    | GAuth
    | Unauth
    | AppCheck
    | UnAppCheck
    | UnAppCheckLong
    | Listen
    | Unlisten
    | Put
    | Merge
    | Get
    | OnDisconnectPut
    | OnDisconnectMerge
    | OnDisconnectCancel
)


class ClientData(Struct, tag_field="t", tag="d"):
    d: ClientRequest


class Ping(Struct, tag_field="t", tag="p"):
    d: Any = None


class SwitchAck(Struct, tag_field="t", tag="a"):
    d: Any = None


class EndTransmission(Struct, tag_field="t", tag="n"):
    d: Any = None


class ClientControl(Struct, tag_field="t", tag="c"):
    d: Ping | SwitchAck | EndTransmission


ClientMessage = ClientData | ClientControl


class RawRequest(Struct):
    """Just enough of a malformed request to answer it (``r``) and name it (``a``)."""

    r: int | UnsetType = UNSET
    a: str | UnsetType = UNSET


class RawClientData(Struct):
    t: str
    d: RawRequest | UnsetType = UNSET


# --------------------------------------------------------------- server -> client


class HandshakeBody(Struct):
    ts: int
    v: str
    h: str
    s: str


class Hello(Struct, tag_field="t", tag="h"):
    d: HandshakeBody


class Pong(Struct, tag_field="t", tag="o"):
    d: None = None


class Reset(Struct, tag_field="t", tag="r"):
    d: str


class Shutdown(Struct, tag_field="t", tag="s"):
    d: str


class ServerError(Struct, tag_field="t", tag="e"):
    d: str


ServerControlBody = Hello | Pong | Reset | Shutdown | ServerError


class ServerControl(Struct, tag_field="t", tag="c"):
    d: ServerControlBody


class ResponseBody(Struct):
    s: str
    d: Any = ""


class Response(Struct):
    """``{"r": n, "b": {"s": status, "d": data}}`` (no ``a``)."""

    r: int
    b: ResponseBody


class PushBody(Struct):
    p: str
    d: Any = None
    t: int | UnsetType = UNSET


class RevokeBody(Struct):
    p: str
    q: list[WireQuery] | UnsetType = UNSET


class StatusBody(Struct):
    s: str
    d: str = ""


class DebugBody(Struct):
    msg: str


class Push(Struct, tag_field="a"):
    """Base of every server push: ``{"a": action, "b": body}``."""


class DataPush(Push, tag="d"):
    b: PushBody


class MergePush(Push, tag="m"):
    b: PushBody


class RevokePush(Push, tag="c"):
    b: RevokeBody


class AuthRevokedPush(Push, tag="ac"):
    b: StatusBody


class AppCheckRevokedPush(Push, tag="apc"):
    b: StatusBody


class SecurityDebugPush(Push, tag="sd"):
    b: DebugBody


ServerPush = DataPush | MergePush | RevokePush | AuthRevokedPush | AppCheckRevokedPush | SecurityDebugPush


class ServerData(Struct, tag_field="t", tag="d"):
    d: Response | Push


ServerMessage = ServerData | ServerControl


class IncomingServerPayload(Struct):
    """First stage of decoding a server data message on the client side:
    a response has ``r``; a push has ``a``."""

    r: int | UnsetType = UNSET
    a: str | UnsetType = UNSET
    b: Raw = Raw(b"null")


class IncomingServerData(Struct, tag_field="t", tag="d"):
    d: IncomingServerPayload


IncomingServerMessage = IncomingServerData | ServerControl
