"""Shared fixtures: a real `rtdb serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

RTDB = str(Path(sys.executable).with_name("rtdb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """A `rtdb serve` subprocess. ``url`` is its base URL; ``restart()`` keeps the data directory."""

    data_dir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_file = self.data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [RTDB, "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtdb serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"rtdb serve did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
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
