"""Brokers carry committed ChangeSets to subscribers, per namespace, in commit order.

:class:`InProcessBroker` is the single-process default. A distributed broker
(Redis Pub/Sub) implements the same two methods: ``publish`` sends the
ChangeSet to every node, and each node calls its local subscribers with
ChangeSets in ``seq`` order (holding back a ChangeSet until the ones before it
arrived; :class:`SeqOrderer` does that bookkeeping).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from rtdb.core.changes import ChangeSet

log = logging.getLogger("rtdb.realtime")

Subscriber = Callable[[ChangeSet], None]


class Broker(Protocol):
    def publish(self, changeset: ChangeSet) -> None: ...

    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]: ...


class InProcessBroker:
    """Calls subscribers synchronously, in publish order (= commit order)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = {}

    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.setdefault(ns, []).append(callback)

        def cancel() -> None:
            subscribers = self._subscribers.get(ns, [])
            if callback in subscribers:
                subscribers.remove(callback)

        return cancel

    def publish(self, changeset: ChangeSet) -> None:
        for callback in list(self._subscribers.get(changeset.namespace, ())):
            try:
                callback(changeset)
            except Exception:
                log.exception("change subscriber failed")


class SeqOrderer:
    """Releases ChangeSets of one namespace in ``seq`` order, whatever order they arrive in."""

    def __init__(self, last_seq: int = 0) -> None:
        self.last_seq = last_seq
        self._held: dict[int, ChangeSet] = {}

    def push(self, changeset: ChangeSet) -> list[ChangeSet]:
        if changeset.seq <= self.last_seq:
            return []  # a duplicate
        self._held[changeset.seq] = changeset
        ready: list[ChangeSet] = []
        while self.last_seq + 1 in self._held:
            self.last_seq += 1
            ready.append(self._held.pop(self.last_seq))
        return ready
