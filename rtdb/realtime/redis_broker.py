"""The broker between rtdb nodes: Redis Pub/Sub carries ChangeSets, the store's change log
makes up for what it loses.

Every node commits to the shared store, which orders the commits of a namespace
and names the order with ``seq``; the writing node then PUBLISHes the ChangeSet on
the namespace's channel ``{prefix}:ns:{name}``. A node SUBSCRIBEs to the
namespaces it has open (and to ``{prefix}:ctl`` for announcements) and releases
ChangeSets to its subscribers in ``seq`` order (:class:`~rtdb.realtime.ordered.
OrderedFeed`). Pub/Sub delivers at most once, so every loss is made good from the
change log (``fetch``):

- a gap (seq n+1 arrived, n did not) is read after ``gap_wait_s``;
- a lost *last* commit is found by the head poll: every ``head_poll_s`` the store's
  last ``seq`` of each open namespace (``head``) is compared with what arrived;
- a dropped connection (Redis restarted, or the node was evicted for reading too
  slowly) is retried with backoff; once everything is SUBSCRIBEd again, every open
  namespace is read from its log. While Redis is down the head poll alone keeps
  delivery going, about ``head_poll_s`` late.

Messages are the brokers' msgpack arrays (:data:`rtdb.core.ipc.BrokerMessage`):
``["C", node, epoch, ChangeSet]``, or ``["P", node, epoch, ns, seq]`` (a pointer, for a
ChangeSet encoded above ``pointer_above`` bytes: receivers read it from the log), and
``["A", node, kind, ns]`` for announcements. A node accepts its own ChangeSets when
it publishes them and drops their echo unread; ``epoch`` names the namespace's
history (a restore starts a new one: :meth:`OrderedFeed._arrived`).

Both connections are plain asyncio protocols that parse replies with hiredis:
redis-py's objects cost 16-100 µs per PUBLISH (bench/broker_bench.py), the raw
path about 1 µs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import msgspec
from redis.asyncio.connection import parse_url

from rtdb.core import ipc
from rtdb.core.changes import ChangeSet, encode_changeset
from rtdb.core.ipc import BrokerAnnounce, BrokerChange, BrokerPointer
from rtdb.realtime.broker import Head
from rtdb.realtime.ordered import FeedStats, OrderedFeed

log = logging.getLogger("rtdb.realtime")

POINTER_ABOVE = 256 * 1024
"""ChangeSets whose encoding is larger go as a pointer ``(ns, seq)`` read from the log."""
MAX_BACKLOG = 32 * 1024 * 1024
"""Bytes waiting to be written to Redis past which publishes are dropped (receivers read the log)."""


def command(*args: bytes) -> bytes:
    """A Redis command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


@dataclass
class RedisStats(FeedStats):
    sent: int = 0
    """Messages handed to the publish connection (ChangeSets, pointers, announcements)."""
    pointers: int = 0
    """ChangeSets sent as a pointer, being large."""
    unsent: int = 0
    """Messages dropped because Redis was unreachable or too far behind."""
    received: int = 0
    """Messages received (own echoes included)."""
    reconnects: int = 0
    """Times the subscribe connection was made again after it dropped (Redis restarted, evicted us)."""


class _Link(asyncio.Protocol):
    """One connection to Redis; ``on_reply`` gets each reply (hiredis parses the stream)."""

    def __init__(self, on_reply: Callable[[Any], None]) -> None:
        self.on_reply = on_reply
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = hiredis.Reader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        reader, on_reply = self._reader, self.on_reply
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                on_reply(reply)
        except hiredis.ProtocolError:
            log.exception("unreadable reply from redis")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def backlog(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RedisBroker(OrderedFeed[RedisStats]):
    """See the module doc. ``head`` reads the store's last ``seq`` per namespace (``None``: no
    head poll); ``prefix`` names the cluster (channels are global to a Redis server)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379", *, prefix: str = "rtdb", head: Head | None = None,
                 head_poll_s: float = 1.0, gap_wait_s: float = 0.2, pointer_above: int = POINTER_ABOVE,
                 reconnect_max_s: float = 1.0, connect_timeout_s: float = 5.0, max_backlog: int = MAX_BACKLOG,
                 node_id: str | None = None) -> None:
        super().__init__(RedisStats(), gap_wait_s=gap_wait_s)
        self.url = url
        self.prefix = prefix
        self.node_id = node_id or secrets.token_hex(8)
        self.head_poll_s = head_poll_s
        self.pointer_above = pointer_above
        self.reconnect_max_s = reconnect_max_s
        self.connect_timeout_s = connect_timeout_s
        self.max_backlog = max_backlog
        self._head = head
        self._address = parse_url(url)
        self._ctl = f"{prefix}:ctl".encode()
        self._ns_channel = f"{prefix}:ns:".encode()
        self._own = ipc.change_prefix(self.node_id)
        self._publisher: _Link | None = None
        self._subscriber: _Link | None = None
        self._outgoing: list[bytes] = []
        self._confirming: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._pongs: deque[asyncio.Future[None]] = deque()
        self._connections: list[asyncio.Task[None]] = []

    # -- lifetime ------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (or keep trying in the background) and start the head poll; returns once the
        first attempt to connect is over."""
        loop = asyncio.get_running_loop()
        tried = [loop.create_future(), loop.create_future()]
        self._connections = [
            loop.create_task(self._keep_connected("publish", self._publish_connected, tried[0])),
            loop.create_task(self._keep_connected("subscribe", self._subscribe_connected, tried[1])),
        ]
        if self._head is not None:
            self._connections.append(loop.create_task(self._poll(self._head)))
        await asyncio.gather(*tried)

    async def aclose(self) -> None:
        for task in self._connections:
            task.cancel()
        for task in self._connections:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connections = []
        for link in (self._publisher, self._subscriber):
            if link is not None:
                link.close()
                await link.closed
        self._publisher = self._subscriber = None
        self._settle_pending()
        self.close()
        tasks = list(self._tasks)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> RedisBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def is_subscribed(self) -> bool:
        return self._subscriber is not None and self._subscriber.transport is not None

    def is_publishing(self) -> bool:
        return self._publisher is not None and self._publisher.transport is not None

    async def sync(self) -> None:
        """Returns once this node has handled every message Redis sent it before now (a PING
        through the subscribe connection); at once if it is not connected."""
        link = self._subscriber
        if link is None or link.transport is None:
            return
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(pong)
        link.send(command(b"PING"))
        await pong

    # -- Broker (ordering and the rest are OrderedFeed's) ----------------------------------
    def publish(self, changeset: ChangeSet, encoded: bytes | None = None) -> None:
        ns = changeset.namespace
        state = self._namespaces.get(ns)
        epoch = (state.epoch if state is not None else None) or ""
        if encoded is None:
            encoded = encode_changeset(changeset)
        if len(encoded) > self.pointer_above:
            self.stats.pointers += 1
            message = ipc.encode(BrokerPointer(self.node_id, epoch, ns, changeset.seq))
        else:
            message = ipc.broker_change(self.node_id, epoch, encoded)
        self._send(self._ns_channel + ns.encode(), message)
        self._arrived(changeset)

    def open_namespace(self, ns: str) -> Awaitable[None] | None:
        if ns in self._namespaces:
            pending = self._confirming.get(self._ns_channel + ns.encode())
            return pending[-1] if pending else None
        super().open_namespace(ns)
        return self._subscribe(self._ns_channel + ns.encode())

    def forget_namespace(self, ns: str) -> None:
        if ns in self._namespaces:
            link = self._subscriber
            if link is not None:
                link.send(command(b"UNSUBSCRIBE", self._ns_channel + ns.encode()))
        super().forget_namespace(ns)

    def announce(self, kind: str, ns: str) -> None:
        self._send(self._ctl, ipc.encode(BrokerAnnounce(self.node_id, kind, ns)))

    # -- publishing ------------------------------------------------------------------------
    def _send(self, channel: bytes, message: bytes) -> None:
        """Queue a PUBLISH; what one turn of the event loop queues goes out in one write."""
        link = self._publisher
        if link is None or link.transport is None or link.backlog() > self.max_backlog:
            self.stats.unsent += 1
            return
        self.stats.sent += 1
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing += (b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n" % len(channel), channel,
                           b"\r\n$%d\r\n" % len(message), message, b"\r\n")

    def _flush(self) -> None:
        data = b"".join(self._outgoing)
        queued = len(self._outgoing) // 5
        self._outgoing.clear()
        link = self._publisher
        if link is not None and link.transport is not None:
            link.send(data)
        else:  # the connection dropped within this turn of the loop
            self.stats.sent -= queued
            self.stats.unsent += queued

    def _published(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            log.error("redis refused a publish: %s", reply)

    async def _publish_connected(self, link: _Link, first: bool) -> None:
        self._publisher = link

    # -- subscribing -----------------------------------------------------------------------
    def _subscribe(self, channel: bytes) -> Awaitable[None] | None:
        """SUBSCRIBE; something that settles once Redis confirmed it (or the connection dropped:
        then the reconnect reads the log of every open namespace)."""
        link = self._subscriber
        if link is None or link.transport is None:
            return None
        loop = asyncio.get_running_loop()
        confirmed: asyncio.Future[None] = loop.create_future()
        self._confirming.setdefault(channel, deque()).append(confirmed)
        link.send(command(b"SUBSCRIBE", channel))
        # a connection that hangs must not hold up opening a namespace for ever: the head poll
        # and gaps make good what arrives before the subscription
        loop.call_later(self.connect_timeout_s, _settle_late, confirmed, channel)
        return confirmed

    def _received(self, reply: Any) -> None:
        """One reply on the subscribe connection: mostly ``[b"message", channel, data]``."""
        if type(reply) is not list:
            if isinstance(reply, hiredis.ReplyError):
                log.error("redis refused a subscription: %s", reply)
            return
        kind = reply[0]
        if kind == b"message":
            self.stats.received += 1
            data = reply[2]
            if data.startswith(self._own):
                return  # our own ChangeSet, accepted when we published it
            try:
                message = ipc.decode_broker(data)
            except msgspec.DecodeError:
                log.warning("unreadable message on %r", reply[1])
                return
            if type(message) is BrokerChange:
                self._arrived(message.changeset, message.epoch)
            elif message.node == self.node_id:
                return
            elif type(message) is BrokerPointer:
                self._want(message.ns, message.seq, now=True, epoch=message.epoch)
            elif type(message) is BrokerAnnounce:
                self._heard(message.kind, message.ns)
        elif kind == b"subscribe":
            waiting = self._confirming.get(reply[1])
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._confirming[reply[1]]
                if not future.done():
                    future.set_result(None)
        elif kind == b"pong":
            if self._pongs:
                pong = self._pongs.popleft()
                if not pong.done():
                    pong.set_result(None)

    async def _subscribe_connected(self, link: _Link, first: bool) -> None:
        """SUBSCRIBE to everything open, wait for Redis to confirm, then read every open
        namespace's log: what was published while this node was not subscribed is lost."""
        self._settle_pending()
        self._subscriber = link
        # if it drops before Redis confirms, nobody may keep waiting for the confirmations (an
        # engine opening a namespace awaits one: it would hang until Redis is back)
        link.closed.add_done_callback(lambda _: self._settle_pending() if self._subscriber is link else None)
        channels = [self._ctl] + [self._ns_channel + ns.encode() for ns in self._namespaces]
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for channel in channels:
            confirmed: asyncio.Future[None] = loop.create_future()
            self._confirming.setdefault(channel, deque()).append(confirmed)
            waits.append(confirmed)
        link.send(command(b"SUBSCRIBE", *channels))
        await asyncio.wait_for(asyncio.gather(*waits), self.connect_timeout_s)
        if link.transport is None:
            raise ConnectionError("the subscribe connection dropped while subscribing")
        if not first:
            self.stats.reconnects += 1
            log.warning("subscribed to redis again (%d namespaces): reading what was missed from the logs",
                        len(channels) - 1)
        self._fill_all()

    def _settle_pending(self) -> None:
        """The subscribe connection is gone: nobody waits on it any more."""
        for waiting in self._confirming.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)
        self._confirming.clear()
        while self._pongs:
            pong = self._pongs.popleft()
            if not pong.done():
                pong.set_result(None)

    # -- connections -----------------------------------------------------------------------
    async def _keep_connected(self, role: str, connected: Callable[[_Link, bool], Awaitable[None]],
                              tried: asyncio.Future[None]) -> None:
        """Connect, and connect again whenever the connection drops, with backoff."""
        on_reply = self._received if role == "subscribe" else self._published
        delay, first, failing = 0.05, True, False
        while True:
            link: _Link | None = None
            try:
                link = await asyncio.wait_for(self._connect(on_reply), self.connect_timeout_s)
                await connected(link, first)
            except (OSError, TimeoutError, ConnectionError) as exc:
                if link is not None:
                    link.close()
                    if self._subscriber is link:
                        self._subscriber = None
                        self._settle_pending()
                if not failing:
                    log.warning("redis %s connection to %s failed (%s); retrying", role, self.url, exc or type(exc))
                    failing = True
                if not tried.done():
                    tried.set_result(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            if not tried.done():
                tried.set_result(None)
            if failing:
                log.warning("redis %s connection to %s is back", role, self.url)
            delay, first, failing = 0.05, False, False
            await asyncio.shield(link.closed)  # cancelling this task must not cancel that
            if role == "subscribe":
                self._subscriber = None
                self._settle_pending()
            else:
                self._publisher = None
            log.warning("lost the redis %s connection to %s; reconnecting", role, self.url)

    async def _connect(self, on_reply: Callable[[Any], None]) -> _Link:
        loop = asyncio.get_running_loop()
        address = self._address
        if "path" in address:
            _, link = await loop.create_unix_connection(lambda: _Link(on_reply), address["path"])
        else:
            secure = ssl.create_default_context() if "SSL" in address.get("connection_class", type).__name__ else None
            _, link = await loop.create_connection(lambda: _Link(on_reply), address.get("host", "127.0.0.1"),
                                                   address.get("port", 6379), ssl=secure)
        if address.get("password"):
            user = address.get("username")
            credentials = (user.encode(),) if user else ()
            link.send(command(b"AUTH", *credentials, str(address["password"]).encode()))
        return link

    async def _poll(self, head: Head) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.head_poll_s)
            try:
                await self._poll_heads(head)
                failing = False
            except Exception:
                if not failing:
                    log.exception("reading the store's heads failed")
                    failing = True


def _settle_late(confirmed: asyncio.Future[None], channel: bytes) -> None:
    if not confirmed.done():
        log.warning("redis did not confirm the subscription to %r in time", channel)
        confirmed.set_result(None)
