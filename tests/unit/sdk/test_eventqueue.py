"""The event queue raises in order, survives bad callbacks and re-entry."""

from __future__ import annotations

from typing import Any

import pytest

from rtdb_sdk.eventqueue import EventQueue
from rtdb_sdk.events import Event, Registration


def test_events_raised_from_a_callback_run_after_the_queued_ones(caplog: pytest.LogCaptureFixture) -> None:
    order: list[Any] = []
    queue: EventQueue

    def deliver(event: Event) -> None:
        order.append(event.node)
        if event.node == "boom":
            raise RuntimeError("callback failed")
        if event.node == 1:
            queue.raise_events([Event(reg, "value", (), node=3)])

    queue = EventQueue(deliver)
    reg = Registration("value", lambda snap: None)
    cancelled = Registration("value", lambda snap: None)
    cancelled.active = False
    queue.raise_events(
        [
            Event(reg, "value", (), node=1),
            Event(cancelled, "value", (), node="skipped"),
            Event(reg, "value", (), node="boom"),
            Event(reg, "value", (), node=2),
        ]
    )
    assert order == [1, "boom", 2, 3]
    assert "callback raised" in caplog.text
