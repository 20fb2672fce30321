"""Clusters for tests: `rtdb serve` nodes sharing one PostgreSQL schema and one Redis, nginx in
front (its config made from ``examples/cluster/nginx.conf``), and private PostgreSQL and Redis
servers on free ports for the tests that stop them. Everything a helper starts, it stops by PID.

    with fresh_url() as url, Cluster(tmp_path, database_url=url) as cluster:
        cluster.start(3, nginx=True)
        cluster.nodes[0].url, cluster.nginx.host, cluster.wires(cluster.nodes[2].host, 2)

Redis is 127.0.0.1:6379 (``RTDB_TEST_REDIS_URL`` overrides); without it the tests skip, or fail
with ``RTDB_REQUIRE_SERVICES`` set (CI). A cluster's channels are named after its identity in
the database, so each fresh schema is a cluster of its own on the shared Redis.
"""

from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Loopback, RunningServer
from server_process import free_port, stop
from websockets.sync.client import ClientConnection, connect

REDIS_URL = os.environ.get("RTDB_TEST_REDIS_URL", "redis://127.0.0.1:6379")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "cluster" / "nginx.conf"


def unavailable(why: str) -> None:
    if os.environ.get("RTDB_REQUIRE_SERVICES"):
        pytest.fail(why + " (RTDB_REQUIRE_SERVICES is set)")
    pytest.skip(why)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_redis() -> str:
    """The tests' Redis URL (skip or fail when it is unreachable)."""
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    if not listening(parts.hostname or "127.0.0.1", parts.port or 6379):
        unavailable(f"Redis at {REDIS_URL} is unreachable")
    return REDIS_URL


def wait_until(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def tcp_sockets(pid: int) -> list[tuple[int, int, bool]]:
    """``(local port, remote port, established)`` of each TCP socket of process ``pid`` (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                out.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                            fields[3] == "01"))
    return out


# ----------------------------------------------------------------------------- wire client
class Wire:
    """A minimal protocol-v5 client on one WebSocket, recording the handshake and every data push."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.r = 0
        self.pushes: list[dict[str, Any]] = []
        self.acks: dict[int, dict[str, Any]] = {}
        self.order: list[tuple[str, Any]] = []  # ("ack", r) and ("push", message), as they arrived
        self.cond = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                msg = json.loads(text)
                if msg.get("t") != "d":
                    continue
                d = msg["d"]
                with self.cond:
                    if "r" in d:
                        self.acks[d["r"]] = d["b"]
                        self.order.append(("ack", d["r"]))
                    elif d.get("a") in ("d", "m", "c"):
                        self.pushes.append(d)
                        self.order.append(("push", d))
                    self.cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, action: str, body: dict[str, Any]) -> int:
        with self.cond:
            self.r += 1
            r = self.r
        self.ws.send(json.dumps({"t": "d", "d": {"r": r, "a": action, "b": body}}))
        return r

    def wait(self, predicate: Any, timeout: float = 15) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), f"timed out; pushes so far: {self.pushes[-3:]}"

    def request(self, action: str, body: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        r = self.send(action, body)
        self.wait(lambda: r in self.acks or self.closed, timeout)
        assert r in self.acks, "the connection closed before the answer"
        return self.acks[r]

    def values(self) -> list[tuple[str, Any]]:
        """The (path, data) of every data push so far, in order."""
        with self.cond:
            return [(p["b"]["p"], p["b"]["d"]) for p in self.pushes if p["a"] in ("d", "m")]


def put_from_each(writers: list[Wire], path: str, n: int) -> None:
    """Each writer sends ``n`` puts of ``{"by": its index, "n": i}`` to ``path``, all writers at
    once (a thread each), pipelined; returns when every put was acknowledged ``ok``."""
    threads = [threading.Thread(target=lambda w=w, k=k: [w.send("p", {"p": path, "d": {"by": k, "n": i}})
                                                         for i in range(n)])
               for k, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.wait(lambda w=w: len(w.acks) >= n + 1)  # and the listen each made first
        assert all(b["s"] == "ok" for b in w.acks.values()), w.acks


@contextmanager
def wires(host: str, n: int, ns: str = "shared") -> Iterator[list[Wire]]:
    """``n`` protocol clients connected to ``host`` (a node or the balancer)."""
    with ExitStack() as stack:
        out = []
        for _ in range(n):
            ws = stack.enter_context(connect(f"ws://{host}/.ws?v=5&ns={ns}", open_timeout=10, max_size=None))
            hello = json.loads(ws.recv(timeout=10))
            assert hello["d"]["t"] == "h", hello
            out.append(Wire(ws, hello["d"]["d"]))
        yield out


# ----------------------------------------------------------------------------- nginx
class Nginx(Loopback):
    """nginx on a free loopback port in front of ``ports``, configured from the example template."""

    def __init__(self, ports: list[int], *, template: Path = TEMPLATE) -> None:
        if not Path(NGINX).exists():
            unavailable(f"no nginx at {NGINX} (make install installs it)")
        self.port = free_port()
        self.ports = ports
        self.run_dir = Path(tempfile.mkdtemp(prefix="rtdb-nginx-"))
        self.run_dir.chmod(0o755)  # its workers run as nobody when the master is root
        servers = "\n        ".join(f"server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in ports)
        config = (template.read_text().replace("__RUN_DIR__", str(self.run_dir))
                  .replace("__LISTEN__", f"127.0.0.1:{self.port}").replace("__SERVERS__", servers))
        (self.run_dir / "nginx.conf").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = str(self.run_dir)
        with open(self.run_dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                [NGINX, "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log", "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not listening("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{self.log()}")
            time.sleep(0.02)

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.run_dir / "stdout.log", self.run_dir / "error.log")
                 if p.exists()]
        return "\n".join(parts)

    def stop(self) -> None:
        stop(self.proc)  # SIGTERM is nginx's fast shutdown: the master stops its workers
        self.proc = None
        shutil.rmtree(self.run_dir, ignore_errors=True)


# ----------------------------------------------------------------------------- private services
class PrivateRedis:
    """A redis-server of the test's own on a free port (no persistence) that it may stop and start."""

    def __init__(self) -> None:
        if not Path(REDIS_SERVER).exists():
            unavailable("no redis-server binary")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rtdb-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.dir / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.dir)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: listening("127.0.0.1", self.port), 10, "redis-server to listen")

    def stop(self) -> None:
        stop(self.proc, signal.SIGKILL)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL server of the test's own (``initdb`` in a temporary directory, a free port,
    trust auth for ``root``), which it may stop and start. As root, the server runs as the
    ``postgres`` user (``initdb`` refuses root)."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            unavailable(f"no PostgreSQL binaries in {PG_BIN}")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="rtdb-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*self._as, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "root", "--auth=trust",
                        "-E", "UTF8", "--no-locale"], check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self._as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                        "-l", str(self.dir / "postgres.log"), "-w", "start"], check=True, capture_output=True)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT: fast shutdown (clients are cut off); SIGKILL: a crash."""
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        if sig == signal.SIGKILL:  # its children outlive a killed postmaster for a moment
            wait_until(lambda: not listening("127.0.0.1", self.port), 10, "PostgreSQL to go")
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- the cluster
class Cluster:
    """Nodes of one cluster (`rtdb serve --database-url … --redis-url …`), and optionally nginx.
    ``args`` go to every node (default ``--emulator``)."""

    def __init__(self, tmp_path: Path, *, database_url: str, redis_url: str | None = None,
                 args: tuple[str, ...] = ("--emulator",), name: str = "c") -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.redis_url = redis_url or require_redis()
        self.args = args
        self.name = name
        self.nodes: list[RunningServer] = []
        self.nginx: Nginx | None = None

    def add_node(self, *extra: str) -> RunningServer:
        i = len(self.nodes) + 1
        node = RunningServer(self.tmp_path / f"{self.name}-n{i}", [
            *self.args, "--database-url", self.database_url, "--redis-url", self.redis_url,
            "--node-id", f"{self.name}-n{i}", "--head-poll-s", "0.5", *extra])
        self.nodes.append(node)
        node.start()
        return node

    def start(self, n: int = 3, *, nginx: bool = False) -> Cluster:
        for _ in range(n):
            self.add_node()
        if nginx:
            self.nginx = Nginx([node.port for node in self.nodes])
            self.nginx.start()
        return self

    def wires(self, host: str, n: int = 1, ns: str = "shared") -> Any:
        return wires(host, n, ns)

    def health(self, node: RunningServer) -> tuple[int, dict[str, Any]]:
        response = httpx.get(node.url + "/healthz", timeout=10)
        return response.status_code, response.json()

    def logs(self) -> str:
        out = [f"--- {n.host}\n{n.log()[-4000:]}" for n in self.nodes]
        if self.nginx is not None:
            out.append(f"--- nginx\n{self.nginx.log()[-2000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- driven scripts
class NodeScript:
    """A Node.js script driven line by line: commands to its stdin, one JSON object per line
    from its stdout (``expect(key)`` waits for the object holding ``key``)."""

    def __init__(self, node: str, script: Path, **env: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.proc = subprocess.Popen([node, str(script)], cwd=script.parent, env={**clean, **env}, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
                      threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True)]
        for pump in self.pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        for line in stream:
            put(line)
        put(None)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {key!r} from the script in {timeout} s:\n{''.join(self.stderr)[-5000:]}"
                                     ) from None
            if line is None:
                raise AssertionError(f"the script exited ({self.proc.wait()}) before {key!r}:\n"
                                     f"{''.join(self.stderr)[-5000:]}")
            if line.startswith("{"):
                got = json.loads(line)
                if key in got:
                    return got[key]

    def __enter__(self) -> NodeScript:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pump in self.pumps:
            pump.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
