"""The one ordered queue that raises callbacks.

Transitions hand their events to :meth:`EventQueue.raise_events`; callbacks run
in order, outside any state change. A callback that writes (re-enters) only
appends: its events run after the ones already queued. A registration cancelled
before its event is raised gets nothing; an exception in a callback is logged
and does not stop the others.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable

from rtdb_sdk.events import Event

log = logging.getLogger("rtdb_sdk")


class EventQueue:
    __slots__ = ("_deliver", "_draining", "_queue")

    def __init__(self, deliver: Callable[[Event], None]) -> None:
        self._deliver = deliver
        self._queue: deque[Event] = deque()
        self._draining = False

    def raise_events(self, events: Iterable[Event]) -> None:
        self._queue.extend(events)
        if self._draining:
            return
        self._draining = True
        try:
            queue = self._queue
            while queue:
                event = queue.popleft()
                registration = event.registration
                if event.type != "cancel" and (not registration.active or registration.callback is None):
                    continue
                try:
                    self._deliver(event)
                except Exception:
                    log.exception("a %s callback raised", event.type)
        finally:
            self._draining = False
