"""REST tells the store that a write is the process's only work (rtdb.storage.lone.ALONE) when
the HTTP server says its connection is alone, the body is small and no other process writes."""

from __future__ import annotations

from typing import Any

import pytest

from rtdb.core.value import normalize
from rtdb.engine.writes import WriteResult
from rtdb.server.auth import Authenticator
from rtdb.server.rest import LONE_BODY_MAX, LONE_EXTENSION, RestApi
from rtdb.server.settings import Settings
from rtdb.storage.lone import ALONE


class Engine:
    def __init__(self, *, shared: bool = False) -> None:
        self.shared = shared
        self.seen: list[bool] = []

    async def set(self, ns: str, path: Any, value: Any, *, caller: Any, if_match: Any = None) -> WriteResult:
        self.seen.append(ALONE.get())
        return WriteResult(normalize(value, path), None)

    async def update(self, ns: str, path: Any, value: Any, *, caller: Any) -> WriteResult:
        self.seen.append(ALONE.get())
        return WriteResult(normalize(value, path), None)


async def call(api: RestApi, method: str, body: bytes, lone: bool | None) -> int:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": "/a.json", "raw_path": b"/a.json", "query_string": b"",
        "headers": [(b"content-length", str(len(body)).encode())],
    }
    if lone is not None:
        scope["extensions"] = {LONE_EXTENSION: lambda: lone}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Any] = []

    async def receive() -> Any:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await api(scope, receive, send)
    return int(sent[0]["status"])


def api(engine: Engine) -> RestApi:
    settings = Settings(emulator=True)
    return RestApi(engine, settings, Authenticator(settings), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "body"), [("PUT", b"1"), ("PATCH", b'{"b": 1}'), ("DELETE", b"")])
async def test_a_small_write_on_the_only_connection_is_alone(method: str, body: bytes) -> None:
    engine = Engine()
    assert await call(api(engine), method, body, lone=True) == 200
    assert engine.seen == [True]
    assert not ALONE.get()  # only inside that request


@pytest.mark.parametrize(
    ("lone", "body", "shared"),
    [(False, b"1", False), (None, b"1", False), (True, b'"' + b"x" * LONE_BODY_MAX + b'"', False), (True, b"1", True)],
    ids=["other-connections", "no-extension", "large-body", "shared-file"],
)
async def test_otherwise_a_write_is_not_alone(lone: bool | None, body: bytes, shared: bool) -> None:
    engine = Engine(shared=shared)
    assert await call(api(engine), "PUT", body, lone=lone) == 200
    assert engine.seen == [False]
