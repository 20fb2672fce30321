"""A client of rtdb's native WebSocket protocol (the one ``rtdb serve`` runs) with no socket:
a stand-in transport records what the server writes, and websockets' sans-I/O client makes
the handshake and the masked frames a browser would send.

:class:`Wire` works at the level of bytes (``test_wsprotocol.py`` checks them exactly);
:class:`Client` at the level of Firebase messages (``test_ws.py``, ``test_fuzz_wire.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from rtdb.server.ws import WsEndpoint
from rtdb.server.wsprotocol import WsServer

HOST = "127.0.0.1:9000"
_SURROGATE = re.compile("[\ud800-\udfff]")


class FakeTransport:
    """What asyncio gives a protocol, recording every write (pause/resume/close supported)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.reading = True
        self.high: int | None = None
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.written.append(bytes(data))
        self.wrote.set()

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.write(part)

    def close(self) -> None:
        self.closing = True
        self.wrote.set()

    def abort(self) -> None:
        self.aborted = self.closing = True
        self.wrote.set()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = high

    def take(self) -> bytes:
        data, self.written = b"".join(self.written), []
        self.wrote.clear()
        return data


class Wire:
    """One socket to the native protocol: a websockets client's bytes in, the server's bytes out."""

    def __init__(self, endpoint: WsEndpoint, path: str = "/.ws?v=5&ns=demo") -> None:
        self.server = WsServer(endpoint, ping_interval=None)
        self.state = SimpleNamespace(connections=set(), tasks=set())
        self.protocol = self.server.protocol_class()(None, self.state, {})
        self.transport = FakeTransport()
        self.protocol.connection_made(self.transport)
        self.client = ClientProtocol(parse_uri(f"ws://{HOST}{path}"), max_size=None)
        self.request = self.client.connect()

    def handshake_bytes(self) -> bytes:
        self.client.send_request(self.request)
        return b"".join(self.client.data_to_send())

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def send_text(self, text: str) -> None:
        self.client.send_text(text.encode())
        self.send(b"".join(self.client.data_to_send()))

    async def written(self, until: Callable[[bytes], bool], timeout: float = 5) -> bytes:
        """The bytes written so far, once ``until`` holds for them."""
        data = b""
        async with asyncio.timeout(timeout):
            while True:
                data += self.transport.take()
                if until(data):
                    return data
                await self.transport.wrote.wait()

    async def close(self) -> None:
        """The client goes away (the socket is lost); the connection's last work is awaited."""
        self.protocol.connection_lost(None)
        await asyncio.gather(*self.state.tasks)


class Client:
    """One WebSocket connection to the native protocol, a Firebase message at a time."""

    def __init__(self, endpoint: WsEndpoint, query: str = "v=5&ns=demo") -> None:
        self.wire = Wire(endpoint, f"/.ws?{query}")
        self.wire.send(self.wire.handshake_bytes())
        self._texts: deque[str] = deque()
        self._closed: int | None = None
        self._gone = False
        self._r = 0

    def _receive(self, data: bytes) -> None:
        self.wire.client.receive_data(data)
        for event in self.wire.client.events_received():
            if isinstance(event, Response):
                assert event.status_code == 101, event
            elif event.opcode is Opcode.TEXT:
                self._texts.append(event.data.decode())
            elif event.opcode is Opcode.CLOSE:
                self._closed = Close.parse(event.data).code

    async def frame(self, timeout: float = 5) -> str:
        """The next text frame; :class:`ConnectionError` once the server closed the connection."""
        async with asyncio.timeout(timeout):
            while not self._texts:
                if self._closed is not None:
                    raise ConnectionError(f"closed with {self._closed}")
                data = self.wire.transport.take()
                if data:
                    self._receive(data)
                elif self.wire.transport.closing:
                    raise ConnectionError("dropped without a close frame")
                else:
                    await self.wire.transport.wrote.wait()
            return self._texts.popleft()

    async def message(self, timeout: float = 5) -> dict[str, Any]:
        first = await self.frame(timeout)
        if first.isdigit():
            first = "".join([await self.frame(timeout) for _ in range(int(first))])
        return json.loads(first)  # type: ignore[no-any-return]

    async def no_message(self) -> None:
        try:
            await self.frame(timeout=0.1)
        except TimeoutError:
            return
        raise AssertionError("a message came")

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one text frame, as a browser would (lone surrogates become U+FFFD)."""
        self.wire.send_text(_SURROGATE.sub("\ufffd", text))

    def request(self, action: str, body: dict[str, Any]) -> int:
        self._r += 1
        self.send_raw(json.dumps({"t": "d", "d": {"r": self._r, "a": action, "b": body}}))
        return self._r

    async def call(self, action: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Send a request; return the pushes that came before its response, and the response body."""
        r = self.request(action, body)
        pushes = []
        while True:
            msg = await self.message()
            if msg["t"] == "d" and msg["d"].get("r") == r:
                return pushes, msg["d"]["b"]
            pushes.append(msg["d"])

    async def close(self) -> None:
        """The socket goes away; returns once the server finished with the connection
        (its onDisconnect writes ran), raising what went wrong there, if anything."""
        if not self._gone:
            self._gone = True
            await asyncio.wait_for(self.wire.close(), 5)


async def connect(endpoint: WsEndpoint, *, admin: bool = True, query: str = "v=5&ns=demo") -> Client:
    """A client past the server's hello (checked), signed in as the owner unless ``admin=False``."""
    client = Client(endpoint, query)
    hello = await client.message()
    assert hello["t"] == "c" and hello["d"]["t"] == "h" and isinstance(hello["d"]["d"]["ts"], int)
    if admin:
        _, body = await client.call("gauth", {"cred": "owner"})
        assert body["s"] == "ok"
    return client
