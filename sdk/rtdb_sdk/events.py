"""Registrations (one per ``on_*`` call) and the events the sync tree computes for them.

The sync tree never calls a callback: it returns :class:`Event` values, and the
event queue raises them later, in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node

EventType = Literal["value", "child_added", "child_changed", "child_removed", "child_moved"]
EVENT_TYPES: tuple[EventType, ...] = ("value", "child_added", "child_changed", "child_removed", "child_moved")
# The order in which one transition's events are raised (as the JS SDK's EventGenerator does).
CHILD_ORDER: tuple[EventType, ...] = ("child_removed", "child_added", "child_moved", "child_changed")

_ids = itertools.count(1)


class Registration:
    """One callback for one event type on one query. ``callback`` may be ``None``
    for internal registrations that only keep a listen alive (transactions)."""

    __slots__ = ("active", "callback", "id", "kind", "on_cancel")

    def __init__(
        self,
        kind: EventType,
        callback: Callable[..., Any] | None,
        on_cancel: Callable[[Exception], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.on_cancel = on_cancel
        self.active = True
        self.id = next(_ids)

    def __repr__(self) -> str:
        return f"Registration({self.kind}, #{self.id})"


@dataclass(frozen=True, slots=True)
class Event:
    """``type`` is an event type or ``"cancel"``. ``path`` is the view's path, ``key`` the
    child's key (``None`` for ``value``), ``node`` the data (the old child for
    ``child_removed``), ``prev`` the key of the child before it in query order.
    ``spec`` orders the snapshot's children."""

    registration: Registration
    type: EventType | Literal["cancel"]
    path: Path
    key: str | None = None
    node: Node = None
    prev: str | None = None
    spec: QuerySpec | None = None
    error: Exception | None = None

    @property
    def data_path(self) -> Path:
        return self.path if self.key is None else self.path + (self.key,)
