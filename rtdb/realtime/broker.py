"""Brokers carry committed ChangeSets to subscribers, per namespace, in commit order.

:class:`InProcessBroker` is the single-process default. A broker between
processes (:class:`rtdb.realtime.relay.RelayBroker` for `rtdb serve --workers`,
:class:`rtdb.realtime.redis_broker.RedisBroker` between nodes) implements the same
methods: ``publish`` sends the ChangeSet to every process, and each process calls
its local subscribers with ChangeSets in ``seq`` order (holding back a ChangeSet
until the ones before it arrived; :class:`SeqOrderer` does that bookkeeping, and
:class:`rtdb.realtime.ordered.OrderedFeed` the rest). The engine tells the broker
when it opens a namespace (and the commit it starts from), awaits
:meth:`~Broker.delivered` before acknowledging a write (so the writer's own
listeners hear of it first), and announces rules deployments (:meth:`~Broker.announce`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from rtdb.core.changes import ChangeSet

log = logging.getLogger("rtdb.realtime")

Subscriber = Callable[[ChangeSet], None]


Fetch = Callable[[int], Awaitable[list[ChangeSet]]]
"""Reads the committed ChangeSets after a ``seq`` from the namespace's change log."""

Head = Callable[[list[str]], Awaitable[Mapping[str, "int | tuple[str, int]"]]]
"""Reads the last committed ``seq`` of each of these namespaces from the store, or ``(epoch, seq)``
where the store names its history."""


class Broker(Protocol):
    @property
    def shared(self) -> bool:
        """Whether other processes write the namespaces this broker carries (their commits
        arrive through it, and each commit must be kept in the change log for them)."""

    def publish(self, changeset: ChangeSet, encoded: bytes | None = None) -> None:
        """``encoded``: the changeset's :func:`~rtdb.core.changes.encode_changeset`, if the
        caller already has it."""

    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]: ...

    def open_namespace(self, ns: str) -> Awaitable[None] | None:
        """The engine starts opening ``ns``: keep what arrives for it until :meth:`start_namespace`.
        Something to await before reading the store's ``seq`` (the broker is not yet receiving
        what other processes commit to ``ns``), else ``None``."""

    def start_namespace(self, ns: str, seq: int, fetch: Fetch, *, epoch: str | None = None) -> None:
        """``ns`` is open at commit ``seq`` of history ``epoch`` (if the store has one);
        ``fetch`` reads commits a broker missed."""

    def forget_namespace(self, ns: str) -> None:
        """``ns`` was dropped: forget where its commits were (a new file counts from 0 again);
        subscribers stay."""

    def delivered(self, changeset: ChangeSet) -> Awaitable[None] | None:
        """``None`` if local subscribers already have ``changeset``, else something to await."""

    def announce(self, kind: str, ns: str) -> None:
        """Tell the other processes (e.g. ``"rules"`` changed for ``ns``)."""

    def on_announce(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(kind, ns)`` for other processes' announcements."""


class Subscribers:
    """A broker's local subscribers, per namespace."""

    def __init__(self) -> None:
        self._by_ns: dict[str, list[Subscriber]] = {}

    def add(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        """Returns the function that cancels this subscription."""
        self._by_ns.setdefault(ns, []).append(callback)

        def cancel() -> None:
            subscribers = self._by_ns.get(ns, [])
            if callback in subscribers:
                subscribers.remove(callback)

        return cancel

    def of(self, ns: str) -> list[Subscriber]:
        return self._by_ns.get(ns, [])


class InProcessBroker:
    """Calls subscribers synchronously, in publish order (= commit order)."""

    shared = False

    def __init__(self) -> None:
        self._subscribers = Subscribers()

    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        return self._subscribers.add(ns, callback)

    def publish(self, changeset: ChangeSet, encoded: bytes | None = None) -> None:
        call_subscribers(self._subscribers.of(changeset.namespace), changeset)

    # One process: nothing to wait for and no one to tell.
    def open_namespace(self, ns: str) -> Awaitable[None] | None:
        return None

    def start_namespace(self, ns: str, seq: int, fetch: Fetch, *, epoch: str | None = None) -> None:
        pass

    def forget_namespace(self, ns: str) -> None:
        pass

    def delivered(self, changeset: ChangeSet) -> Awaitable[None] | None:
        return None

    def announce(self, kind: str, ns: str) -> None:
        pass

    def on_announce(self, callback: Callable[[str, str], None]) -> None:
        pass


def call_subscribers(subscribers: list[Subscriber], changeset: ChangeSet) -> None:
    for callback in list(subscribers):
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

    def holding(self) -> bool:
        """Whether ChangeSets wait for an earlier one that has not arrived."""
        return bool(self._held)

    def is_held(self, seq: int) -> bool:
        return seq in self._held

    def first_held(self) -> int:
        return min(self._held)

    def skip_to(self, seq: int) -> list[ChangeSet]:
        """Give up on the commits up to ``seq``; release what then follows in order."""
        self.last_seq = max(self.last_seq, seq)
        for stale in [s for s in self._held if s <= self.last_seq]:
            del self._held[stale]
        ready: list[ChangeSet] = []
        while self.last_seq + 1 in self._held:
            self.last_seq += 1
            ready.append(self._held.pop(self.last_seq))
        return ready
