"""The in-process change feed: committed ChangeSets to subscribers, in commit order."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from rtdb.core.changes import ChangeSet

log = logging.getLogger("rtdb.feed")

Subscriber = Callable[[ChangeSet], None]


class LocalFeed:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)

    def subscribe(self, ns: str, callback: Subscriber) -> Callable[[], None]:
        self._subscribers[ns].append(callback)

        def cancel() -> None:
            if callback in self._subscribers[ns]:
                self._subscribers[ns].remove(callback)

        return cancel

    def publish(self, changeset: ChangeSet) -> None:
        for callback in list(self._subscribers.get(changeset.namespace, ())):
            try:
                callback(changeset)
            except Exception:
                log.exception("change feed subscriber failed")
