"""Messages between rtdb's own processes, as tagged msgspec Structs encoded with msgpack.

* **Write commands** (:data:`Command`): what a write asks of the writer. The engine builds
  them, :class:`rtdb.engine.writes.Writes` runs them; the same values go to the writer
  process (`rtdb serve --write-process`) inside a :class:`Request`.
* **Writer process** (:mod:`rtdb.engine.writer`): a frame from the server is a list of
  :class:`Request`; a frame from the child is a list of :class:`Group`, one per group
  transaction, each carrying one :data:`Answer` per request.
* **Brokers** (:mod:`rtdb.realtime.relay` between `--workers`, :mod:`rtdb.realtime.redis_broker`
  between cluster nodes): one :data:`BrokerMessage` per frame or Pub/Sub message.

msgpack keeps what pickle kept for these values: ints and floats stay apart (``1`` is not
``1.0``), ``None``, nested maps and arrays; paths are typed ``tuple[str, ...]`` so they come
back as tuples. Stored values are normalized (:func:`rtdb.core.value.normalize`: integers
within ±2**53), so every number fits msgpack.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rtdb.core import errors
from rtdb.core.auth import Caller
from rtdb.core.changes import ChangeSet
from rtdb.core.errors import PreconditionFailed, RtdbError

PathT = tuple[str, ...]


# -- write commands ------------------------------------------------------------------------
class SetCommand(msgspec.Struct, tag="set", array_like=True, frozen=True):
    """Replace the node at ``path`` with ``node`` (normalized already; ``None`` deletes)."""

    path: PathT
    node: Any
    caller: Caller
    now: int
    if_match: str | None = None
    if_hash: str | None = None


class PriorityCommand(msgspec.Struct, tag="priority", array_like=True, frozen=True):
    """Only the priority of the node at ``path``."""

    path: PathT
    priority: Any
    caller: Caller
    now: int


class UpdateCommand(msgspec.Struct, tag="update", array_like=True, frozen=True):
    """A multi-path update at ``base``; ``items`` from :func:`rtdb.engine.writes.parse_updates`."""

    base: PathT
    items: list[tuple[PathT, Any]]
    caller: Caller
    now: int
    if_hash: str | None = None


class MetaCommand(msgspec.Struct, tag="meta", array_like=True, frozen=True):
    """A row of the file's ``meta`` table (``rules``: the deployed rules)."""

    name: str
    value: str


class IndexesCommand(msgspec.Struct, tag="indexes", array_like=True, frozen=True):
    """Declare (and build) indexes: ``(pattern, child)`` pairs."""

    indexes: list[tuple[PathT, PathT]]


class DisconnectCommand(msgspec.Struct, tag="disconnect", array_like=True, frozen=True):
    """Take a session's stored onDisconnect operations and run them (PostgreSQL)."""

    session_id: str
    taker: str
    owner: str | None
    upto: int | None
    now: int


class YdocCommand(msgspec.Struct, tag="ydoc", array_like=True, frozen=True):
    """Yjs updates (each with its sender) to the document at ``path``, and its mirror."""

    path: PathT
    items: list[tuple[bytes, Caller]]
    now: int


class OpenCommand(msgspec.Struct, tag="open", array_like=True, frozen=True):
    """Writer process: create the namespace's file if missing (the server is about to read it)."""


class CloseCommand(msgspec.Struct, tag="close", array_like=True, frozen=True):
    """Writer process: let go of the namespace's file (it is being dropped)."""


class CompactCommand(msgspec.Struct, tag="compact", array_like=True, frozen=True):
    """Writer process: give the namespace's free pages back (answered once done)."""


class RulesCommand(msgspec.Struct, tag="rules", array_like=True, frozen=True):
    """Writer process, about itself: the server-wide default rules are now ``source``."""

    source: str


Command = (SetCommand | PriorityCommand | UpdateCommand | MetaCommand | IndexesCommand | DisconnectCommand
           | YdocCommand | OpenCommand | CloseCommand | CompactCommand | RulesCommand)


# -- the writer process ----------------------------------------------------------------------
class Request(msgspec.Struct, tag="q", array_like=True, frozen=True):
    """Run ``command`` for namespace ``ns`` (``None``: a request about the writer itself)."""

    id: int
    ns: str | None
    command: Command


class Written(msgspec.Struct, tag="w", array_like=True, frozen=True):
    """A write's result: the node now at its path and its encoded ChangeSet (``None``: nothing changed)."""

    id: int
    node: Any
    encoded: bytes | None


class Done(msgspec.Struct, tag="d", array_like=True, frozen=True):
    """A command with no result ran."""

    id: int


class Compacted(msgspec.Struct, tag="c", array_like=True, frozen=True):
    """A compaction finished (the fields of :class:`rtdb.storage.store.CompactReport`)."""

    id: int
    bytes_before: int
    bytes_after: int
    pages_freed: int
    auto_vacuum: str
    wal_truncated: bool


class Failed(msgspec.Struct, tag="e", array_like=True, frozen=True):
    """The command raised an :class:`RtdbError` (``current``/``etag``: a failed precondition's)."""

    id: int
    code: str
    message: str
    current: Any = None
    etag: str | None = None


Answer = Written | Done | Compacted | Failed


class Group(msgspec.Struct, tag="g", array_like=True, frozen=True):
    """One group transaction's answers. ``committed``: ``True`` committed, ``False`` nothing to
    commit (its only op failed), ``None`` the commit itself failed (nothing happened)."""

    committed: bool | None
    answers: list[Answer]


_ERRORS: dict[str, type[RtdbError]] = {
    cls.code: cls for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, RtdbError) and cls.__module__ == errors.__name__
    and cls not in (RtdbError, PreconditionFailed)
}
"""Every error class of :mod:`rtdb.core.errors` by its code (a precondition failure carries more)."""


def failed(rid: int, error: RtdbError) -> Failed:
    """The answer for ``error`` (a subclass outside core, such as a rules error, keeps its code)."""
    if isinstance(error, PreconditionFailed):
        return Failed(rid, error.code, error.message, error.current, error.etag)
    return Failed(rid, error.code, error.message)


def error_of(answer: Failed) -> RtdbError:
    """The exception ``answer`` stands for: the same class (by code) and message."""
    if answer.code == PreconditionFailed.code:
        return PreconditionFailed(answer.message, answer.current, answer.etag)
    cls = _ERRORS.get(answer.code)
    if cls is not None:
        return cls(answer.message)
    error = RtdbError(answer.message)
    error.code = answer.code  # e.g. invalid_rules: the transports map it by code
    return error


# -- brokers: between processes that write the same namespaces ---------------------------------
class BrokerChange(msgspec.Struct, tag="C", array_like=True, frozen=True):
    """A ChangeSet that process ``node`` committed, in the namespace's history ``epoch`` (``""``
    where the store names none). Worker relay: ``node`` is ``""`` (the supervisor never echoes a
    frame to its sender)."""

    node: str
    epoch: str
    changeset: ChangeSet


class BrokerPointer(msgspec.Struct, tag="P", array_like=True, frozen=True):
    """Commit ``seq`` of ``ns`` exists but is too large to carry: read it from the change log."""

    node: str
    epoch: str
    ns: str
    seq: int


class BrokerAnnounce(msgspec.Struct, tag="A", array_like=True, frozen=True):
    """``node``'s announcement (``rules`` deployed, ``drop``/``dropped``) about ``ns``."""

    node: str
    kind: str
    ns: str


BrokerMessage = BrokerChange | BrokerPointer | BrokerAnnounce


_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(list[Request])
_groups = msgspec.msgpack.Decoder(list[Group])
_broker = msgspec.msgpack.Decoder(BrokerMessage)


def encode(message: Any) -> bytes:
    """Any of this module's messages, or a list of them, as msgpack."""
    return _encoder.encode(message)


def decode_requests(data: bytes) -> list[Request]:
    return _requests.decode(data)


def decode_groups(data: bytes) -> list[Group]:
    return _groups.decode(data)


def decode_broker(data: bytes) -> BrokerMessage:
    return _broker.decode(data)


def change_prefix(node: str) -> bytes:
    """How every encoded :class:`BrokerChange` of ``node`` starts: a 4-array, its tag, the node."""
    return b"\x94\xa1C" + _encoder.encode(node)


def broker_change(node: str, epoch: str, encoded: bytes) -> bytes:
    """``encode(BrokerChange(node, epoch, changeset))`` from the changeset's own encoding
    (:func:`rtdb.core.changes.encode_changeset`), not encoding it again."""
    return change_prefix(node) + _encoder.encode(epoch) + encoded
