"""Yjs documents from Python: a pycrdt ``Doc`` kept in sync with a document at a path.

::

    async with rtdb_sdk.open_doc("http://127.0.0.1:9000?ns=demo", "notes/today") as session:
        text = session.doc.get("content", type=pycrdt.Text)
        text += "hello"           # sent to the server, and from there to every other editor
        await session.synced()    # the server's state has arrived

It speaks the y-websocket protocol at ``/.yjs/<path>`` (the same as a browser's
``WebsocketProvider``), so Python and JavaScript editors share one document. The document's
plain JSON also appears at ``path`` in the database (read-only there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from pycrdt import Doc, TransactionEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtdb.protocol.yjs import (
    Awareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def doc_url(url: str, path: str, *, auth: str | None = None) -> str:
    """The socket URL of the document at ``path`` for a database URL (``http://host:port?ns=x``)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    params = dict(parse_qsl(parts.query))
    if auth is not None:
        params["auth"] = auth
    query = f"?{urlencode(params)}" if params else ""
    return f"{scheme}://{parts.netloc}/.yjs/{quote(path.strip('/'))}{query}"


class DocSession:
    """One connection of ``doc`` to the server's document. Local changes are sent as they are
    made; the server's arrive in the background."""

    def __init__(self, socket: ClientConnection, doc: Doc[Any]) -> None:
        self.socket = socket
        self.doc = doc
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._remote = False
        self._synced = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self._subscription = doc.observe(self._local_change)
        self._tasks = [asyncio.get_running_loop().create_task(self._send()),
                       asyncio.get_running_loop().create_task(self._receive())]

    def _local_change(self, event: TransactionEvent) -> None:
        if not self._remote:
            self._outgoing.put_nowait(encode_update(event.update))

    def _apply(self, update: bytes) -> None:
        self._remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False

    async def _send(self) -> None:
        self._outgoing.put_nowait(encode_sync_step1(self.doc.get_state()))
        with contextlib.suppress(ConnectionClosed):
            while (message := await self._outgoing.get()) is not None:
                await self.socket.send(message)

    async def _receive(self) -> None:
        try:
            async for data in self.socket:
                if not isinstance(data, bytes):
                    continue
                message = decode_message(data, max_bytes=MAX_MESSAGE_BYTES)
                if isinstance(message, SyncStep1):
                    self._outgoing.put_nowait(encode_sync_step2(self.doc.get_update(message.state)))
                elif isinstance(message, SyncStep2):
                    self._apply(message.update)
                    self._synced.set()
                elif isinstance(message, SyncUpdate):
                    self._apply(message.update)
                elif isinstance(message, Awareness):
                    pass  # presence is not kept by this client
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.socket.close_code
            self.close_reason = self.socket.close_reason or ""
            self._synced.set()  # nobody waits for a sync that cannot come
            self._outgoing.put_nowait(None)

    async def synced(self) -> None:
        """Return once the server's state has been received (or the connection ended)."""
        await self._synced.wait()

    @property
    def closed(self) -> bool:
        return self._tasks[1].done()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        self.doc.unobserve(self._subscription)
        self._outgoing.put_nowait(None)
        await asyncio.gather(self._tasks[0], return_exceptions=True)  # what was queued goes out first
        await self.socket.close()
        await self.wait_closed()


@contextlib.asynccontextmanager
async def open_doc(url: str, path: str, *, auth: str | None = None, doc: Doc[Any] | None = None,
                   **connect_options: Any) -> AsyncIterator[DocSession]:
    """Connect ``doc`` (a new ``pycrdt.Doc`` by default) to the document at ``path``."""
    socket = await connect(doc_url(url, path, auth=auth), max_size=MAX_MESSAGE_BYTES, **connect_options)
    session = DocSession(socket, doc if doc is not None else Doc())
    try:
        yield session
    finally:
        await session.close()


__all__ = ["DocSession", "doc_url", "open_doc"]
