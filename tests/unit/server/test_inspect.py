"""The emulator tool endpoints' pure parts: the multipart reader of ``/.upload`` and the
function-trigger stub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from rtdb.core.auth import Caller
from rtdb.core.errors import InvalidData, PermissionDenied, TooBig
from rtdb.server import inspect

BOUNDARY = "b0undary"


def body(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for name, content in parts:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="f.json"\r\n'
                f"Content-Type: application/json\r\n\r\n").encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def read(raw: bytes, *, chunk: int = 7, limit: int = 1 << 20) -> object:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), chunk):
            yield raw[i:i + chunk]

    return asyncio.run(inspect.read_upload(chunks(), BOUNDARY, limit))


def test_upload_reads_the_json_of_field_myfile_across_chunks() -> None:
    assert read(body(("other", b"ignored"), ("myFile", b'{"a": [1, 2]}'))) == {"a": [1, 2]}


@pytest.mark.parametrize("raw", [
    body(("other", b"1")),                                   # no myFile
    body(("myFile", b"{nope")),                              # not JSON
    body(("myFile", b"1"))[:-10],                            # cut short
    b"no multipart at all",
])
def test_upload_refuses_what_is_not_a_complete_json_myfile(raw: bytes) -> None:
    with pytest.raises(InvalidData):
        read(raw)


def test_upload_stops_reading_past_the_limit() -> None:
    with pytest.raises(TooBig):
        read(body(("myFile", b"1" * 1000)), limit=500)


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data", None])
def test_upload_needs_a_multipart_content_type_with_a_boundary(content_type: str | None) -> None:
    with pytest.raises(InvalidData):
        inspect.boundary_of(content_type)


def test_boundary_may_be_quoted() -> None:
    assert inspect.boundary_of('multipart/form-data; boundary="abc"') == "abc"


def test_function_triggers_are_logged_as_not_run(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rtdb.server.inspect"):
        inspect.accept_triggers("db", Caller(admin=True))
    assert "does not run Cloud Functions triggers" in caplog.text
    with pytest.raises(PermissionDenied):
        inspect.accept_triggers("db", Caller(auth={"uid": "u"}))
