"""`rtdb serve --workers N`: a supervisor and N worker processes on one port.

The supervisor binds one ``SO_REUSEPORT`` listening socket per worker (the kernel
spreads new connections over them) and keeps them open, so a worker that dies
and is restarted finds its queued connections still waiting. Each worker is a
fresh interpreter running the whole server on its socket, with a
:class:`~rtdb.realtime.relay.RelayBroker` linked to the supervisor over a
socket pair; the supervisor copies every frame one worker sends to all the
others. Workers share the SQLite files (SQLite orders their commits) and exit
when their link to the supervisor closes, so none outlives it.

With ``--redis-url`` each worker is a node of the cluster (its own node id,
``NODE-wN``, and its own Redis broker): the supervisor keeps the sockets, the
restarts and the link (workers still exit when it goes) but relays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import uvloop

from rtdb.process.child import child_config, spawn
from rtdb.realtime.relay import FrameReader, RelayBroker
from rtdb.runner.server import LOG_FORMAT, RtdbServer, StartError, build_app, uvicorn_config
from rtdb.server.lp import Forwarder
from rtdb.server.settings import Settings

log = logging.getLogger("rtdb")

RESTART_DELAY_S = 1.0
STOP_WAIT_S = 15.0
RELAY_BUFFER_LIMIT = 64 * 1024 * 1024
"""Bytes the supervisor holds for one worker before it gives up on that worker."""


# ----------------------------------------------------------------------------- supervisor
def supervise(settings: Settings) -> int:
    app = build_app(settings)  # what would stop every worker at start (StartError) stops the supervisor now
    if app.state.cluster is not None:
        app.state.cluster.backend.close()  # each worker is a node with its own connections
    try:
        listeners = _bind(settings.host, settings.port, settings.workers)
    except OSError as exc:
        raise StartError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    log.info("rtdb: %d workers on http://%s:%d", settings.workers, settings.host, listeners[0].getsockname()[1])
    return uvloop.run(Supervisor(settings, listeners).run())


def _bind(host: str, port: int, n: int) -> list[socket.socket]:
    out: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            out.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, port))
            port = s.getsockname()[1]  # port 0: the others take the one the first got
            s.listen(4096)
            s.set_inheritable(True)
    except OSError:
        for s in out:
            s.close()
        raise
    return out


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    link: asyncio.Transport | None
    started: float


class _Link(asyncio.Protocol):
    """The supervisor's end of one worker's relay."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.reader = FrameReader()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.complete(data)
        except ValueError:
            log.exception("worker %d sent a bad relay frame; cutting it off (it restarts)", self.index)
            if self.transport is not None:
                self.transport.close()
            return
        if frames:
            self.supervisor.forward(self.index, frames)


class Supervisor:
    def __init__(self, settings: Settings, listeners: list[socket.socket]) -> None:
        self.settings = settings
        self.listeners = listeners
        self.workers: list[_Worker | None] = [None] * len(listeners)
        self.stopping = False
        # each worker also serves on a private Unix socket here: long-polling requests and upgrade
        # sockets of a session that another worker owns are passed to their owner through it
        self.peers_dir = tempfile.mkdtemp(prefix="rtdb-workers-")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for i in range(len(self.listeners)):
            await self._start(i)
        watcher = loop.create_task(self._watch())
        await stop.wait()
        self.stopping = True
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await self._stop_all()
        for s in self.listeners:
            s.close()
        shutil.rmtree(self.peers_dir, ignore_errors=True)
        return 0

    async def _start(self, index: int) -> None:
        parent_end, child_end = socket.socketpair()
        listen_fd, relay_fd = self.listeners[index].fileno(), child_end.fileno()
        spec = {"index": index, "workers": len(self.listeners), "listen_fd": listen_fd, "relay_fd": relay_fd,
                "peers_dir": self.peers_dir, "settings": settings_flags(self.settings)}
        proc = spawn("rtdb.runner.workers", spec, pass_fds=(listen_fd, relay_fd))
        child_end.close()
        link, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: _Link(self, index), parent_end)
        self.workers[index] = _Worker(index, proc, link, time.monotonic())
        log.info("worker %d started (pid %d)", index, proc.pid)

    def forward(self, sender: int, data: bytes) -> None:
        for worker in self.workers:
            if worker is None or worker.index == sender or worker.link is None:
                continue
            if worker.link.get_write_buffer_size() > RELAY_BUFFER_LIMIT:
                # a worker that stopped reading (stuck, or stopped) would make the supervisor hold
                # every later commit: end it instead; it restarts and its clients resync
                log.error("worker %d (pid %d) is not reading its relay; restarting it", worker.index, worker.proc.pid)
                worker.link.abort()
                worker.link = None
                worker.proc.kill()
                continue
            worker.link.write(data)

    async def _watch(self) -> None:
        """Restart a worker that exits while the server runs."""
        while True:
            await asyncio.sleep(0.2)
            for i, worker in enumerate(self.workers):
                if worker is None or worker.proc.poll() is None:
                    continue
                log.error("worker %d (pid %d) exited with %s; restarting it", i, worker.proc.pid,
                          worker.proc.returncode)
                if worker.link is not None:
                    worker.link.close()
                self.workers[i] = None
                if time.monotonic() - worker.started < RESTART_DELAY_S:
                    await asyncio.sleep(RESTART_DELAY_S)  # a worker that cannot start must not spin
                if not self.stopping:
                    await self._start(i)

    async def _stop_all(self) -> None:
        running = [w for w in self.workers if w is not None and w.proc.poll() is None]
        for worker in running:
            worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while any(w.proc.poll() is None for w in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for worker in running:
            if worker.proc.poll() is None:
                log.error("worker %d did not stop; killing it", worker.index)
                worker.proc.kill()
                worker.proc.wait()
        for slot in self.workers:
            if slot is not None and slot.link is not None:
                slot.link.close()


def settings_flags(settings: Settings) -> dict[str, Any]:
    """``settings`` as JSON-able flags that :meth:`Settings.from_sources` reads back (one worker each)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    out["workers"] = 1
    return out


# ----------------------------------------------------------------------------- worker
class _WorkerLink(asyncio.Protocol):
    """The worker's end of the relay: frames in go to the broker; losing it stops the worker."""

    def __init__(self, broker: RelayBroker | None, server: RtdbServer) -> None:
        self.broker = broker  # None: a cluster node (--redis-url), the link only says the supervisor lives
        self.server = server
        self.reader = FrameReader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.broker is not None:
            self.broker.attach(transport.write)  # type: ignore[attr-defined]  # a stream transport (uvloop's)

    def data_received(self, data: bytes) -> None:
        if self.broker is None:
            return
        for payload in self.reader.feed(data):
            self.broker.received(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.broker is not None:
            self.broker.attach(None)
        if not self.server.should_exit:
            log.error("the supervisor is gone; stopping")
            self.server.should_exit = True


class WorkerServer(RtdbServer):
    def __init__(self, config: Any, app: Any, broker: RelayBroker | None, relay: socket.socket) -> None:
        super().__init__(config, app)
        self.broker = broker
        self.relay = relay

    async def startup(self, sockets: Any = None) -> None:
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: _WorkerLink(self.broker, self), self.relay
        )
        await super().startup(sockets=sockets)

    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets=sockets)
        if self.broker is not None:
            self.broker.close()


def worker_main() -> int:
    spec = child_config()
    settings = Settings.from_sources(spec["settings"], env={})
    log_format = LOG_FORMAT.replace("%(name)s", f"w{spec['index']} %(name)s")
    logging.basicConfig(level=settings.log_level.upper(), format=log_format)
    listen = socket.socket(fileno=spec["listen_fd"])
    relay = socket.socket(fileno=spec["relay_fd"])
    broker: RelayBroker | None = None
    if settings.redis_url is not None:  # a node of the cluster: its own broker, nothing relayed
        settings = replace(settings, node_id=f"{settings.node_id or secrets.token_hex(4)}-w{spec['index']}")
    else:
        broker = RelayBroker()
    try:
        app = build_app(settings, broker)
    except StartError as exc:
        log.error("%s", exc.message)
        return 2
    peer = _peer_socket(spec["peers_dir"], spec["index"])
    app.state.ws.worker = spec["index"]
    app.state.lp.forwarder = Forwarder(lambda worker: peer_socket_path(spec["peers_dir"], worker))
    app.state.console.peers = lambda: [peer_socket_path(spec["peers_dir"], w) for w in range(spec["workers"])
                                       if w != spec["index"]]  # /metrics sums every worker's figures
    gc.freeze()  # start-up objects stay out of every collection (rtdb/runner/server.py)
    WorkerServer(uvicorn_config(settings, app), app, broker, relay).run(sockets=[listen, peer])
    return 0


def peer_socket_path(peers_dir: str, worker: int) -> str:
    return os.path.join(peers_dir, f"w{worker}.sock")


def _peer_socket(peers_dir: str, worker: int) -> socket.socket:
    """This worker's private Unix socket (the other workers pass it requests of its sessions)."""
    path = peer_socket_path(peers_dir, worker)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by this worker's previous process
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1024)
    return s


if __name__ == "__main__":
    raise SystemExit(worker_main())
