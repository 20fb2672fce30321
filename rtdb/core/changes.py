"""ChangeSets: what one committed write changed, for the realtime layer and brokers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from rtdb.core.path import Path
from rtdb.core.value import Node


@dataclass(frozen=True, slots=True)
class Change:
    """The node at ``path`` went from ``old`` to ``new`` (both in node form)."""

    path: Path
    old: Node
    new: Node


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """One committed write.

    ``kind`` is ``"set"`` (one change at ``base``) or ``"update"`` (one change per
    written path below ``base``, applied atomically). ``seq`` is the namespace's
    commit sequence number: every subscriber sees ChangeSets in ``seq`` order.
    Only writes that changed something produce ChangeSets with changes.
    """

    namespace: str
    seq: int
    kind: Literal["set", "update"]
    base: Path
    changes: tuple[Change, ...]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ChangeSet)


def encode_changeset(changeset: ChangeSet) -> bytes:
    """The bytes a broker carries between processes (and the change log stores)."""
    return _encoder.encode(changeset)


def decode_changeset(data: bytes) -> ChangeSet:
    return _decoder.decode(data)
