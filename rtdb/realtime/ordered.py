"""Commit order for a broker between processes or nodes, whatever carries the ChangeSets.

Every process commits its own writes to a store that gives all commits of a
namespace one order, and the commit ``seq`` names it. A transport (the
``--workers`` relay, Redis Pub/Sub) carries each process's ChangeSets to the
others, in no promised order and with no promise that they arrive.
:class:`OrderedFeed` is what such a broker has in common: it keeps what arrives
for a namespace while the engine opens it, releases ChangeSets to local
subscribers in ``seq`` order (holding the ones that came early), lets a writer
await the release of its own commit, and reads a commit that is overdue back
from the namespace's change log (``fetch``) after ``gap_wait_s``. A commit that
is in no log either is skipped and the namespace reported lost (``on_lost``:
its clients start over), so no listener misses a commit unknowingly and none
waits for ever.

Two more hints that commits are missing come from some transports: a *head*
(the store's last ``seq``, polled, or a pointer to a large ChangeSet) names a
commit that must arrive; and an *epoch* carried with a ChangeSet names the
history it belongs to (a restore or a failover starts a new one: the
namespace is reported lost and its order restarts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from rtdb.core.changes import ChangeSet
from rtdb.realtime.broker import Fetch, Head, SeqOrderer, Subscriber, Subscribers, call_subscribers

log = logging.getLogger("rtdb.realtime")


@dataclass
class FeedStats:
    read_from_log: int = 0
    """ChangeSets that did not arrive in time and were read from the change log."""
    head_fills: int = 0
    """Log reads started because a head named a commit that had not arrived."""
    skipped: int = 0
    """Commits in no change log, given up on."""
    lost: int = 0
    """Times a namespace was reported lost (skipped commits, a new epoch)."""


StatsT = TypeVar("StatsT", bound=FeedStats)


@dataclass
class _Namespace:
    orderer: SeqOrderer | None = None  # None while the engine is opening the namespace
    fetch: Fetch | None = None
    epoch: str | None = None  # the history its commits belong to (None: not known)
    retired: set[str] = field(default_factory=set)  # epochs it left behind: their stragglers are dropped
    early: list[tuple[ChangeSet, str | None]] = field(default_factory=list)
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    gap_timer: asyncio.TimerHandle | None = None
    filling: bool = False
    wanted: int = 0  # a commit known to exist: read the log if it does not arrive
    refill: bool = False  # read the log (again) once it is started / the read under way is done


class OrderedFeed(Generic[StatsT]):
    """The ordering half of a broker (see the module doc); a subclass adds the transport,
    calls :meth:`_arrived` with what it receives and :meth:`_heard` with announcements."""

    shared = True  # a broker between processes: they write the same namespaces

    def __init__(self, stats: StatsT, *, gap_wait_s: float = 0.2) -> None:
        self.gap_wait_s = gap_wait_s
        self.stats = stats
        self.on_lost: Callable[[str], None] | None = None
        """Called with a namespace whose commits were skipped: its listeners must start over."""
        self._subscribers = Subscribers()
        self._namespaces: dict[str, _Namespace] = {}
        self._announced: list[Callable[[str, str], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Broker ------------------------------------------------------------------------
    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        return self._subscribers.add(ns, callback)

    def open_namespace(self, ns: str) -> Awaitable[None] | None:
        self._namespaces.setdefault(ns, _Namespace())
        return None

    def start_namespace(self, ns: str, seq: int, fetch: Fetch, *, epoch: str | None = None) -> None:
        state = self._namespaces.setdefault(ns, _Namespace())
        state.fetch = fetch
        if state.orderer is not None:
            # reopened (after closing idle files) or watched before it existed: keep its order,
            # unless its history was replaced meanwhile
            if epoch is not None and state.epoch is not None and epoch != state.epoch:
                self._new_epoch(ns, state, epoch, seq)
            elif epoch is not None:
                state.epoch = epoch
            return
        state.orderer = SeqOrderer(seq)
        state.epoch = epoch
        early, state.early = state.early, []
        for changeset, its_epoch in sorted(early, key=lambda e: e[0].seq):
            self._arrived(changeset, its_epoch)
        if state.refill or state.wanted > state.orderer.last_seq:
            self._fill_now(ns)

    def forget_namespace(self, ns: str) -> None:
        """``ns`` was dropped: its order starts again when it is next opened. Commits of the old
        file still on their way are dropped while it is closed (its clients were disconnected)."""
        state = self._namespaces.pop(ns, None)
        if state is None:
            return
        if state.gap_timer is not None:
            state.gap_timer.cancel()
        _settle(state.waiters)

    def delivered(self, changeset: ChangeSet) -> Awaitable[None] | None:
        state = self._namespaces.get(changeset.namespace)
        if state is None or state.orderer is None or state.orderer.last_seq >= changeset.seq:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append((changeset.seq, future))
        return future

    def on_announce(self, callback: Callable[[str, str], None]) -> None:
        self._announced.append(callback)

    def close(self) -> None:
        for state in self._namespaces.values():
            if state.gap_timer is not None:
                state.gap_timer.cancel()
            _settle(state.waiters)
        for task in self._tasks:
            task.cancel()

    def last_seq(self, ns: str) -> int | None:
        """The last commit of ``ns`` released here (``None``: not open)."""
        state = self._namespaces.get(ns)
        return None if state is None or state.orderer is None else state.orderer.last_seq

    # -- for the transport ---------------------------------------------------------------
    def _arrived(self, changeset: ChangeSet, epoch: str | None = None) -> None:
        """A ChangeSet (own or another's) of the history ``epoch`` (``None``/``""``: not said)."""
        state = self._namespaces.get(changeset.namespace)
        if state is None:
            return  # not open in this process: it reads the store when it opens the namespace
        orderer = state.orderer
        if orderer is None:
            state.early.append((changeset, epoch))
            return
        if epoch and epoch != state.epoch:
            if not self._is_current(changeset.namespace, state, epoch, changeset.seq):
                return
            orderer = state.orderer
            assert orderer is not None
        self._release(changeset.namespace, state, orderer.push(changeset))

    def _is_current(self, ns: str, state: _Namespace, epoch: str, seq: int) -> bool:
        """Commit ``seq`` of history ``epoch`` arrived, another than the namespace's: ``False``
        for a straggler of a history it left behind; else it starts over in that history."""
        if state.epoch is None:
            state.epoch = epoch  # no history was known: now it is
        elif epoch in state.retired:
            return False
        else:
            self._new_epoch(ns, state, epoch, seq - 1)
        return True

    def _heard(self, kind: str, ns: str) -> None:
        """Another process's announcement."""
        for callback in list(self._announced):
            try:
                callback(kind, ns)
            except Exception:
                log.exception("announcement handler failed")

    def _want(self, ns: str, seq: int, *, now: bool = False, epoch: str | None = None) -> None:
        """Commit ``seq`` of ``ns`` (in history ``epoch``) exists: read it from the log if it has
        not arrived after ``gap_wait_s`` (``now``: read it at once, e.g. it was sent as a pointer)."""
        state = self._namespaces.get(ns)
        if state is None:
            return
        if epoch and state.orderer is not None and epoch != state.epoch:
            if not self._is_current(ns, state, epoch, seq):
                return
        state.wanted = max(state.wanted, seq)
        orderer = state.orderer
        if orderer is None or orderer.last_seq >= seq:
            return  # start_namespace reads the log if it starts below it
        if now:
            self._fill_now(ns)
        else:
            self._release(ns, state, [])

    def _fill_now(self, ns: str) -> None:
        """Read ``ns``'s change log now (after a reconnect, everything sent meanwhile was lost)."""
        state = self._namespaces.get(ns)
        if state is None:
            return
        if state.orderer is None or state.fetch is None or state.filling:
            state.refill = True
            return
        if state.gap_timer is not None:
            state.gap_timer.cancel()
            state.gap_timer = None
        self._start_fill(ns, state)

    def _fill_all(self) -> None:
        for ns in list(self._namespaces):
            self._fill_now(ns)

    async def _poll_heads(self, head: Head) -> None:
        """One look at the store's last commit of every open namespace: a commit that did not
        arrive (the last of a burst was lost) is read from the log after ``gap_wait_s``; a head
        below what was released here means the history was replaced."""
        before = {ns: s.orderer.last_seq for ns, s in self._namespaces.items() if s.orderer is not None}
        if not before:
            return
        heads = await head(sorted(before))
        for ns, found in heads.items():
            state = self._namespaces.get(ns)
            if state is None or state.orderer is None or ns not in before:
                continue
            epoch, seq = found if isinstance(found, tuple) else (None, found)
            if epoch and epoch != state.epoch:
                if state.epoch is None:
                    state.epoch = epoch  # no history was known: now it is
                elif epoch not in state.retired:
                    self._new_epoch(ns, state, epoch, seq)  # e.g. dropped and made anew meanwhile
                    continue
                else:
                    continue  # the store still names a history left behind here: a stale read
            if seq < before[ns]:
                log.error("%s: the store's last commit is %d, below the %d released here: its history was "
                          "replaced", ns, seq, before[ns])
                self._restart(ns, state, seq)
            elif seq > state.orderer.last_seq:
                self._want(ns, seq)

    # -- ordering ------------------------------------------------------------------------
    def _release(self, ns: str, state: _Namespace, ready: list[ChangeSet]) -> None:
        orderer = state.orderer
        assert orderer is not None
        if ready:
            subscribers = self._subscribers.of(ns)
            for changeset in ready:
                call_subscribers(subscribers, changeset)
            if state.waiters:
                last = orderer.last_seq
                keep = []
                for seq, future in state.waiters:
                    if seq <= last:
                        if not future.done():
                            future.set_result(None)
                    else:
                        keep.append((seq, future))
                state.waiters = keep
        if orderer.holding() or orderer.last_seq < state.wanted:
            if state.gap_timer is None and not state.filling:
                state.gap_timer = asyncio.get_running_loop().call_later(self.gap_wait_s, self._gap_expired, ns)
        elif state.gap_timer is not None:
            state.gap_timer.cancel()
            state.gap_timer = None

    def _gap_expired(self, ns: str) -> None:
        state = self._namespaces.get(ns)
        if state is None:
            return  # dropped meanwhile
        state.gap_timer = None
        orderer = state.orderer
        if orderer is None or state.filling:
            return
        if orderer.holding():
            self._start_fill(ns, state)
        elif orderer.last_seq < state.wanted:
            self.stats.head_fills += 1
            self._start_fill(ns, state)

    def _start_fill(self, ns: str, state: _Namespace) -> None:
        state.filling = True
        state.refill = False
        task = asyncio.get_running_loop().create_task(self._fill(ns, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill(self, ns: str, state: _Namespace) -> None:
        """Commits are overdue: read them (and what follows) from the change log."""
        orderer = state.orderer
        assert orderer is not None and state.fetch is not None
        try:
            missing = await state.fetch(orderer.last_seq)
        except Exception:
            log.exception("reading the change log of %s failed", ns)
            missing = []
        state.filling = False
        if self._namespaces.get(ns) is not state:
            return  # the namespace was dropped while its change log was read
        if state.orderer is not orderer:
            self._release(ns, state, [])  # its history restarted meanwhile: what was read is stale
            return
        ready: list[ChangeSet] = []
        for changeset in missing:
            if changeset.seq > orderer.last_seq and not orderer.is_held(changeset.seq):
                self.stats.read_from_log += 1
            ready += orderer.push(changeset)
        if not ready and orderer.holding():
            first = orderer.first_held()
            self._skip(ns, state, first - 1)
            ready = orderer.skip_to(first - 1)
        elif not ready and orderer.last_seq < state.wanted:
            self._skip(ns, state, state.wanted)
            ready = orderer.skip_to(state.wanted)
        self._release(ns, state, ready)
        if state.refill:
            self._fill_now(ns)

    def _skip(self, ns: str, state: _Namespace, to: int) -> None:
        assert state.orderer is not None
        last = state.orderer.last_seq
        log.error("%s: commits %d..%d are in no change log; skipping them", ns, last + 1, to)
        self.stats.skipped += to - last
        self._lose(ns)

    def _new_epoch(self, ns: str, state: _Namespace, epoch: str, seq: int) -> None:
        log.error("%s: its history was replaced (epoch %s, was %s); its clients start over", ns, epoch, state.epoch)
        if state.epoch is not None:
            state.retired.add(state.epoch)
        state.epoch = epoch
        self._restart(ns, state, seq)

    def _restart(self, ns: str, state: _Namespace, seq: int) -> None:
        """Count ``ns``'s commits from ``seq`` on: nothing before it will be released here."""
        state.orderer = SeqOrderer(seq)
        state.wanted = 0
        if state.gap_timer is not None:
            state.gap_timer.cancel()
            state.gap_timer = None
        _settle(state.waiters)
        state.waiters = []
        self._lose(ns)

    def _lose(self, ns: str) -> None:
        self.stats.lost += 1
        if self.on_lost is not None:
            try:
                self.on_lost(ns)
            except Exception:
                log.exception("restarting the clients of %s failed", ns)


def _settle(waiters: list[tuple[int, asyncio.Future[None]]]) -> None:
    for _, future in waiters:
        if not future.done():
            future.set_result(None)
