"""The database handle and :func:`connect`."""

from __future__ import annotations

from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any

from rtdb.core.path import Path
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node
from rtdb_sdk.connection import TokenProvider
from rtdb_sdk.reference import DataSnapshot, Reference, parse_path
from rtdb_sdk.repo import Repo
from rtdb_sdk.transport import Transport, parse_database_url


class Database:
    """One connection to one database (namespace), with its local mirror.

    ``async with rtdb_sdk.connect(url) as db`` (or ``db = await rtdb_sdk.connect(url)``
    and ``await db.close()``).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        cache_path: str | None = None,
        transport: Transport | None = None,
        clock: Callable[[], float] | None = None,
        min_reconnect_delay: float = 1.0,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self.url = parse_database_url(url)
        kwargs: dict[str, Any] = {}
        if clock is not None:
            kwargs["clock"] = clock
        self._repo = Repo(
            self.url,
            token=token,
            token_provider=token_provider,
            transport=transport,
            cache_path=cache_path,
            min_reconnect_delay=min_reconnect_delay,
            **kwargs,
        )
        self._repo.snapshot = self._snapshot
        self._started = False

    def _snapshot(self, path: Path, node: Node, spec: QuerySpec | None) -> DataSnapshot:
        return DataSnapshot(Reference(self._repo, path), node, spec)

    async def start(self) -> Database:
        if not self._started:
            self._started = True
            await self._repo.start()
        return self

    def __await__(self) -> Generator[Any, None, Database]:
        return self.start().__await__()

    async def __aenter__(self) -> Database:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (the server runs this client's onDisconnect writes)."""
        await self._repo.close()

    def reference(self, path: str = "") -> Reference:
        """The reference at ``path`` (``""`` is the root; ``.info/connected`` is local)."""
        return Reference(self._repo, parse_path(path))

    ref = reference

    @property
    def server_time_offset(self) -> int:
        """Server clock minus local clock, in milliseconds (from the last handshake)."""
        return self._repo.server_time_offset

    @property
    def connected(self) -> bool:
        return self._repo.conn.connected

    async def wait_connected(self) -> None:
        await self._repo.conn.wait_connected()

    async def refresh_auth(self) -> None:
        """With a ``token_provider``: ask it for a fresh credential now (after a sign-in or a
        sign-out) and authenticate the open connection with it (``None`` signs out)."""
        await self._repo.conn.refresh_auth()

    async def go_offline(self) -> None:
        """Close the connection and stay offline; writes queue locally."""
        await self._repo.conn.go_offline()

    async def go_online(self) -> None:
        """Reconnect (listens and pending writes are restored)."""
        self._repo.conn.go_online()


def connect(
    url: str,
    token: str | None = None,
    cache_path: str | None = None,
    *,
    token_provider: TokenProvider | None = None,
    transport: Transport | None = None,
    min_reconnect_delay: float = 1.0,
) -> Database:
    """A database handle for ``url`` (``http://host:port?ns=name``); use ``async with`` or ``await``.

    ``token``: an ID token / custom token JWT, or an admin credential (``owner`` in
    emulator mode). ``token_provider``: instead of a fixed token, an async function
    ``(force_refresh: bool) -> token | None`` that the connection asks before each
    (re)connection and again ahead of each token's expiry (ID tokens last an hour).
    ``cache_path``: a SQLite file that keeps the mirror and unsent writes across restarts.
    """
    return Database(
        url, token=token, cache_path=cache_path, transport=transport, min_reconnect_delay=min_reconnect_delay,
        token_provider=token_provider,
    )
