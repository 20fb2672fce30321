"""A node's membership of the cluster: its lease, self-fencing, and the sweeper.

With a PostgreSQL backend each serving process is a node: it registers a row in
``rtdb_cluster_nodes`` under a fresh id (a name, if given, then random: every incarnation
has its own) and renews its lease every ``renew_s`` to ``now() + lease_s`` by PostgreSQL's
clock. A lease that ran out is never renewed.

**Self-fencing.** A node that has not renewed for ``lease_s - margin_s`` (by its own
monotonic clock, counted from the start of the last successful renewal, which is no later
than PostgreSQL's ``now()`` of it) is *fenced*: other nodes may already be running its
sessions' onDisconnect operations, so it calls ``on_fenced`` (the transports close their
connections with 1012), refuses writes (:meth:`check_writable`, the engine's write guard)
and registers again under a new id; the old row is expired so that a sweeper (maybe this
node's, once back) runs what it held. :meth:`fenced` is computed from the clock at each
call, so a process resumed after SIGSTOP refuses writes before its heartbeat has even run.

**Sweeper.** Every ``sweep_s`` a node holding a lease first ends the database sessions of
processes left only with expired leases (one stopped inside a write group holds its
namespace's row lock, and no PostgreSQL 15 timeout ends a pipeline waiting for its client),
then runs the operations of nodes whose lease ran out, session by session and namespace by
namespace, each in one transaction of the namespace's write group that also deletes them
(:meth:`PostgresRegistry.sweep`): sweepers may try the same session, the first one's
``DELETE`` takes it; a sweep that fails leaves the operations to the next one.

**onDisconnect operations** of a node's sessions are rows in PostgreSQL
(:class:`PostgresRegistry`, the cluster's :class:`~rtdb.engine.ondisconnect.DisconnectRegistry`),
registered under the node's lease.

**Takeover notices.** A session taken over on another node (``ls=``) is announced on a
PostgreSQL ``NOTIFY`` channel of the schema; ``on_takeover(session_id, caller)`` lets the
node holding it close it. The notice is only a courtesy (the claim in PostgreSQL is what
keeps an operation from running twice), so it rides the database every node already has
rather than the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtdb.core.auth import Caller
from rtdb.core.errors import RtdbError, Unavailable
from rtdb.core.path import Path
from rtdb.engine.ondisconnect import Accept, DisconnectOp, decode_caller, encode_json

if TYPE_CHECKING:
    from rtdb.engine.engine import Engine
    from rtdb.storage.pg_cluster import ClusterDb

log = logging.getLogger("rtdb.cluster")

LEASE_S = 10.0
"""How long a node's lease lasts after each renewal."""



class Cluster:
    """This process as a node of the cluster sharing the PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        address: str = "",
        lease_s: float = LEASE_S,
        renew_s: float | None = None,
        sweep_s: float | None = None,
        margin_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rtdb.storage.pg_cluster import ClusterDb  # psycopg: imported only by a server on PostgreSQL

        self.db = ClusterDb(url)
        self.name = name
        self.address = address
        self.lease_s = lease_s
        self.renew_s = renew_s if renew_s is not None else lease_s / 5
        self.sweep_s = sweep_s if sweep_s is not None else lease_s / 5
        self.margin_s = margin_s if margin_s is not None else lease_s / 5
        self.clock = clock
        self.registry = PostgresRegistry(self.db, self.current)
        self.on_fenced: Callable[[], None] = lambda: None
        """Called once each time this node fences itself (close every client connection)."""
        self.on_takeover: Callable[[str, Caller], None] = lambda session_id, caller: None
        """Called when another node took over session ``session_id`` for ``caller``."""
        self.node_id: str | None = None
        self._renewed_at = 0.0
        self._engine: Engine | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.swept = 0
        """onDisconnect operations this node ran for dead nodes."""

    # -- state ---------------------------------------------------------------------
    def fenced(self) -> bool:
        return self.node_id is None or self.clock() - self._renewed_at > self.lease_s - self.margin_s

    def current(self) -> str | None:
        """This node's id while it holds a lease it may trust (``None`` when fenced)."""
        if self.node_id is not None and self.fenced():
            self._fence()
        return self.node_id

    def check_writable(self) -> None:
        """The engine's write guard: a fenced node writes nothing."""
        if self.current() is None:
            raise Unavailable("This node lost its cluster lease and is rejoining; try another node or retry")

    # -- lifecycle -----------------------------------------------------------------
    async def start(self, engine: Engine) -> None:
        """Register (PostgreSQL must be reachable), then keep the lease, sweep and listen."""
        self._engine = engine
        self.registry.engine = engine
        await self.db.open()
        await self._register()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat()), loop.create_task(self._sweeper()),
                       loop.create_task(self.db.listen(self._noticed))]

    async def stop(self) -> None:
        """Stop the tasks; sessions still registered here are left to a sweeper (the lease is
        ended now, so one runs them at once), and the row goes once they are done."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        node, self.node_id = self.node_id, None
        if node is not None:
            with contextlib.suppress(Exception):
                await self.db.expire(node)
        await self.db.close()

    async def _register(self) -> None:
        node_id = f"{self.name}-{secrets.token_hex(6)}" if self.name else secrets.token_hex(8)
        started = self.clock()
        await self.db.add_node(node_id, self.address, self.lease_s)
        self._renewed_at = started
        self.node_id = node_id
        log.info("cluster node %s registered (lease %.1f s)", node_id, self.lease_s)

    def _fence(self) -> None:
        node, self.node_id = self.node_id, None
        if node is None:
            return
        log.error("cluster node %s could not renew its lease in time: fenced (closing connections, "
                  "refusing writes until it has registered again)", node)
        task = asyncio.get_running_loop().create_task(self._expire(node))
        self._tasks.append(task)
        try:
            self.on_fenced()
        except Exception:
            log.exception("closing connections after fencing failed")

    async def _expire(self, node: str) -> None:
        with contextlib.suppress(Exception):
            await self.db.expire(node)

    # -- tasks ---------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.renew_s)
            if self.current() is None:
                try:
                    await self._register()
                except Exception as exc:
                    log.warning("cluster: registering again failed: %s", exc)
                continue
            node = self.node_id
            assert node is not None
            started = self.clock()
            try:
                renewed = await asyncio.wait_for(self.db.renew(node, self.lease_s), self.renew_s)
            except Exception as exc:  # noqa: BLE001 - unreachable, timed out: fenced once too late
                log.warning("cluster node %s: renewing its lease failed: %s", node, exc)
                continue
            if renewed and self.node_id == node:
                self._renewed_at = started
            elif not renewed and self.node_id == node:
                self._fence()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            await self.sweep()

    async def sweep(self) -> int:
        """Run the operations of every expired node's sessions now; how many ran."""
        if self._engine is None or self.current() is None:
            return 0
        try:
            ended = await self.db.end_expired_sessions()
        except Exception as exc:  # noqa: BLE001 - e.g. a role that may not signal them: logged each round
            log.warning("cluster: ending the database sessions of expired nodes failed: %s", exc)
        else:
            if ended:
                log.warning("cluster: ended %d database session(s) of expired nodes", ended)
        try:
            done = await self.registry.sweep()
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("cluster: sweeping expired nodes failed: %s", exc)
            return 0
        self.swept += done
        return done

    # -- takeover notices ------------------------------------------------------------
    async def announce_takeover(self, session_id: str, caller: Caller) -> None:
        """Tell every node that ``session_id`` was taken over by ``caller``."""
        payload = json.dumps({"s": session_id, "c": json.loads(encode_json(caller)), "n": self.node_id})
        try:
            await self.db.notify(payload)
        except Exception as exc:  # noqa: BLE001 - a courtesy: the old connection times out anyway
            log.info("cluster: announcing a takeover failed: %s", exc)

    def _noticed(self, payload: str) -> None:
        try:
            notice: Any = json.loads(payload)
            if notice.get("n") == self.node_id:
                return
            caller = decode_caller(json.dumps(notice["c"]).encode())
            self.on_takeover(str(notice["s"]), caller)
        except Exception:
            log.exception("cluster: a takeover notice could not be handled")


def cluster_for(engine: Engine, *, name: str | None = None, address: str = "",
                lease_s: float = LEASE_S) -> Cluster | None:
    """A :class:`Cluster` for ``engine`` when its backend is PostgreSQL, else ``None``."""
    url = getattr(engine.backend, "url", None)
    if not isinstance(url, str) or not getattr(engine.backend, "logs_changes", False):
        return None
    return Cluster(url, name=name, address=address, lease_s=lease_s)


class PostgresRegistry:
    """The queues in PostgreSQL, under the lease of the node that ``node()`` names (``None``
    while it holds none: then nothing is registered, taken or swept here).

    This registry runs what it takes itself, through :attr:`engine`: per namespace, one
    ``disconnect`` write command (:mod:`rtdb.engine.writes`) deletes the session's rows and
    runs them in the namespace's write group, so taking and running commit together (each
    operation exactly once: a node that dies, or a group that fails, in between leaves the
    rows to the next taker). :meth:`take` and :meth:`takeover` hand the caller nothing to run."""

    durable = True

    def __init__(self, db: ClusterDb, node: Callable[[], str | None], engine: Engine | None = None) -> None:
        self.db = db
        self.node = node
        self.engine = engine
        """Runs the taken operations (set when the node starts)."""
        self._retry: set[str] = set()  # sessions ended here whose operations could not be run yet

    def _node(self) -> str:
        node = self.node()
        if node is None:
            raise Unavailable("This node has lost its cluster lease; try again")
        return node

    async def register(self, session_id: str, op: DisconnectOp) -> None:
        stored = await self.db.add_op(self._node(), session_id, op.ns, op.kind, "/".join(op.path),
                                      encode_json(op.data), encode_json(op.caller))
        if not stored:
            raise Unavailable("This node has lost its cluster lease; try again")

    async def cancel(self, session_id: str, path: Path) -> int:
        return await self.db.cancel(session_id, "/".join(path))

    async def take(self, session_id: str) -> list[DisconnectOp]:
        """Run the session's operations now (and return none); if that fails they are tried
        again at each :meth:`sweep` while this node lives (by a sweeper elsewhere once it died)."""
        node = self.node()
        if node is None:  # lost the lease: the sweeper runs them
            return []
        try:
            await self._run(session_id, node)
        except Exception as exc:
            self._retry.add(session_id)
            if isinstance(exc, RtdbError):
                raise
            log.exception("onDisconnect of session %s failed", session_id)
            raise Unavailable("The onDisconnect operations could not run (they will be retried)") from exc
        return []

    async def takeover(self, session_id: str, accept: Accept) -> list[DisconnectOp] | None:
        """Run the old session's operations now (and return none) if ``accept`` takes the
        caller who registered its latest one; only those registered up to that one are taken."""
        latest = await self.db.latest(session_id)
        if latest is None:
            return []
        _, caller, upto = latest
        if not accept(decode_caller(caller)):
            return None
        await self._run(session_id, self._node(), upto=upto)
        return []

    async def discard(self, session_id: str) -> None:
        self._retry.discard(session_id)
        await self.db.discard(session_id)

    async def sweep(self) -> int:
        """Run what sessions ended here could not run before, then the operations of every
        node whose lease ran out, session by session; how many ran. Sweepers of several nodes
        may try the same session: the first to take it runs it, the others find nothing."""
        ran = 0
        for session_id in sorted(self._retry):
            node = self.node()
            if node is None:
                return ran
            try:
                ran += await self._run(session_id, node)
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("onDisconnect of session %s failed again: %s", session_id, exc)
            else:
                self._retry.discard(session_id)
        if self.node() is None:
            return ran
        orphans = await self.db.orphans()
        for dead in dict.fromkeys(row[0] for row in orphans):
            log.info("node %s expired: running the onDisconnect operations of its sessions", dead)
        for dead, session_id, ns in orphans:
            node = self.node()
            if node is None:
                return ran
            try:
                ran += await self._run(session_id, node, owner=dead, namespaces=[ns])
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("onDisconnect of session %s of expired node %s failed: %s", session_id, dead, exc)
        await self.db.remove_expired()
        return ran

    async def _run(self, session_id: str, taker: str, *, owner: str | None = None, upto: int | None = None,
                   namespaces: list[str] | None = None) -> int:
        """Take and run the session's operations, namespace by namespace (in the order of their
        first operation); how many ran."""
        engine = self.engine
        if engine is None:
            raise Unavailable("onDisconnect operations cannot run yet: the node has not started")
        ran = 0
        for ns in namespaces if namespaces is not None else await self.db.namespaces(session_id):
            done = await engine.take_disconnect(ns, session_id, taker=taker, owner=owner, upto=upto)
            ran += len(done.results)
        return ran
