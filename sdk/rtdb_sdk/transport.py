"""Sockets: the only code that opens a network connection, behind a small interface.

``connect(url, transport=...)`` accepts any :data:`Transport`: a coroutine
function that opens a socket for a URL. The default speaks WebSocket with the
``websockets`` library.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtdb_sdk.errors import InvalidArgument

USER_AGENT = "Firebase/5/rtdb-python/0.1"


class Socket(Protocol):
    async def send(self, frame: str) -> None: ...

    async def recv(self) -> str:
        """The next text frame; raises :class:`ConnectionError` once the socket is closed."""
        ...

    async def close(self) -> None: ...


Transport = Callable[[str, Mapping[str, str]], Awaitable[Socket]]


class WebSocket:
    """:class:`Socket` over a ``websockets`` client connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection

    async def send(self, frame: str) -> None:
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            raise ConnectionError(str(exc)) from None

    async def recv(self) -> str:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as exc:
            raise ConnectionError(str(exc)) from None
        return frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")

    async def close(self) -> None:
        await self._ws.close()


async def websocket_transport(url: str, headers: Mapping[str, str]) -> Socket:
    connection = await connect(
        url,
        additional_headers=dict(headers),
        user_agent_header=USER_AGENT,
        compression=None,
        max_size=None,
        proxy=None,
        open_timeout=10,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=2,
    )
    return WebSocket(connection)


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """Where a database lives: ``http://127.0.0.1:9000?ns=demo`` → ws, host, namespace."""

    secure: bool
    host: str
    namespace: str | None

    def ws_url(self, last_session: str | None = None, host: str | None = None) -> str:
        scheme = "wss" if self.secure else "ws"
        url = f"{scheme}://{host or self.host}/.ws?v=5"
        if last_session:
            url += f"&ls={last_session}"
        if self.namespace:
            url += f"&ns={self.namespace}"
        return url

    @property
    def http_url(self) -> str:
        base = f"{'https' if self.secure else 'http'}://{self.host}"
        return base + (f"?ns={self.namespace}" if self.namespace else "")


def parse_database_url(url: str) -> DatabaseUrl:
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise InvalidArgument(f"not a database URL: {url!r}")
    params = dict(parse_qsl(parts.query))
    namespace = params.get("ns")
    host = parts.netloc
    if namespace is None:
        hostname = parts.hostname or ""
        if hostname.endswith((".firebaseio.com", ".firebasedatabase.app")):
            namespace = hostname.split(".")[0]
    return DatabaseUrl(parts.scheme in ("https", "wss"), host, namespace)
