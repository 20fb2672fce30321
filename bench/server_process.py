"""Starting and stopping a real ``rtdb serve`` on a free loopback port: the one harness the
tests (``tests/conftest.py``) and the benchmarks share. Scripts in ``bench/`` import it by
name (they run from that folder); pytest finds it through its ``pythonpath`` setting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

RTDB = str(Path(sys.executable).with_name("rtdb"))
"""The ``rtdb`` command of the interpreter running this (the checkout's virtualenv)."""

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without proxy settings (the clients talk to loopback)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**env, **(extra or {})}


def start_serve(port: int, data_dir: Path | str, args: Sequence[str] = (), *, out: IO[bytes] | int | None = None,
                wrap: Sequence[str] = (), cwd: Path | str | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``rtdb serve --port PORT --data-dir DIR ARGS`` in a session of its own (``wrap``: a
    command put in front, e.g. ``env PYTHONPATH=…`` for another checkout), output to ``out``."""
    cmd = [*wrap, RTDB, "serve", "--port", str(port), "--data-dir", str(data_dir), *args]
    return subprocess.Popen(cmd, stdout=out if out is not None else subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=cwd, env=dict(env) if env is not None else server_env())


def wait_healthy(url: str, proc: subprocess.Popen[Any] | None = None, *, timeout: float = START_TIMEOUT_S,
                 log: Callable[[], str] = lambda: "", any_answer: bool = False) -> None:
    """Return once ``url``/healthz answers 200 (``any_answer``: answers at all); raise with
    ``log()`` if ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"rtdb serve exited early ({proc.returncode}):\n{log()}")
        try:
            status = httpx.get(url + "/healthz", timeout=1).status_code
            if status == 200 or any_answer:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"rtdb serve did not become healthy at {url}:\n{log()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, *, timeout: float = STOP_TIMEOUT_S,
         group: bool = False) -> None:
    """Send ``sig`` (to the whole process group with ``group``), wait ``timeout``, then kill."""
    if proc is None or proc.poll() is not None:
        return
    send: Callable[[int], None] = (lambda s: os.killpg(proc.pid, s)) if group else proc.send_signal
    try:
        send(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
