"""Shared fixtures: a real `rtdb serve` process on a free loopback port."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server_process import RTDB, free_port, start_serve, stop, wait_healthy

__all__ = ["RTDB", "RunningServer", "error_of", "free_port"]


class Loopback:
    """A server of the tests on ``port`` of 127.0.0.1."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class RunningServer(Loopback):
    """A `rtdb serve` subprocess. ``url`` is its base URL; ``restart()`` keeps the data directory."""

    data_dir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None

    def start(self) -> None:
        self.log_file = self.data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        with open(self.log_file, "wb") as log:
            self.proc = start_serve(self.port, self.data_dir, self.args, out=log)
        wait_healthy(self.url, self.proc, log=self.log)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.proc, sig)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    servers: list[RunningServer] = []

    def make(*args: str, data_dir: Path | None = None) -> RunningServer:
        d = data_dir or tmp_path / f"data-{len(servers)}"
        server = RunningServer(d, list(args))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: callable) -> RunningServer:  # type: ignore[valid-type]
    """An emulator-mode server (Bearer owner is admin, rules open)."""
    return server_factory("--emulator")  # type: ignore[no-any-return]


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    """An HTTP client of the emulator-mode ``server``."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> str:
    """Assert ``response`` is Firebase's error shape with ``status``; return its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str) and message
    return message


class InProcessServer(Loopback):
    """rtdb's app served by uvicorn on a free loopback port in a thread of the test process:
    the production app and protocols (``rtdb.runner``), without starting an interpreter.
    Tests that need a process of their own (restarts, signals, logs) use ``server_factory``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        from rtdb.runner.server import RtdbServer, build_app, uvicorn_config
        from rtdb.server.settings import Settings
        from rtdb_cli.main import build_parser

        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)  # as `rtdb serve` does before it starts
        flags = ["--port", str(self.port), "--data-dir", str(data_dir), "--log-level", "warning", *args]
        settings = Settings.from_sources(vars(build_parser().parse_args(["serve", *flags])), env={})
        app = build_app(settings)
        self._server = RtdbServer(uvicorn_config(settings, app), app)
        self._thread = threading.Thread(target=self._server.run, name=f"rtdb-{self.port}", daemon=True)
        self._thread.start()
        wait_healthy(self.url, None, log=lambda: "in-process server thread " + ("alive" if self._thread.is_alive()
                                                                                else "ended"))

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


@pytest.fixture
def inproc_server(tmp_path: Path) -> Iterator[InProcessServer]:
    """An emulator-mode server in this process (see :class:`InProcessServer`)."""
    server = InProcessServer(tmp_path / "data", "--emulator")
    yield server
    server.stop()
