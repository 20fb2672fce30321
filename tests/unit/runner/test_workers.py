"""The `--workers` supervisor's relay: frames go to every other worker; a worker that stops
reading is ended (and restarted by the watcher) rather than buffered for without bound."""

from __future__ import annotations

from typing import Any

from rtdb.runner.workers import RELAY_BUFFER_LIMIT, Supervisor, _Worker
from rtdb.server.settings import Settings


class Link:
    def __init__(self, backlog: int = 0) -> None:
        self.backlog = backlog
        self.written: list[bytes] = []
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


class Proc:
    pid = 4242

    def __init__(self) -> None:
        self.killed = False

    def kill(self) -> None:
        self.killed = True


def worker(index: int, backlog: int = 0) -> Any:
    return _Worker(index, Proc(), Link(backlog), 0.0)  # type: ignore[arg-type]


def test_frames_go_to_every_other_worker() -> None:
    supervisor = Supervisor(Settings(), [])
    supervisor.workers = [worker(0), worker(1), None, worker(3)]
    supervisor.forward(1, b"frame")
    assert [w.link.written if w else None for w in supervisor.workers] == [[b"frame"], [], None, [b"frame"]]


def test_a_worker_that_stopped_reading_is_ended_not_buffered_for() -> None:
    supervisor = Supervisor(Settings(), [])
    stuck = worker(1, backlog=RELAY_BUFFER_LIMIT + 1)
    link = stuck.link
    supervisor.workers = [worker(0), stuck]
    supervisor.forward(0, b"frame")
    assert link.written == [] and link.aborted and stuck.link is None and stuck.proc.killed
    supervisor.forward(0, b"next")  # and is skipped until the watcher has restarted it
    assert link.written == []
