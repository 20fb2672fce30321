"""The HTTP protocol's per-response transport (one write per response) and its lone-request check."""

from __future__ import annotations

import asyncio

from rtdb.server.httpprotocol import OneWrite


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_a_head_and_its_body_go_out_as_one_write() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    one.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    one.write(b"more")
    assert transport.writes[-1] == b"more"
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing held
    assert len(transport.writes) == 2


async def test_a_head_without_a_body_yet_goes_out_at_the_end_of_the_turn() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"]
    one.write(b"event: put\n\n")
    assert transport.writes[-1] == b"event: put\n\n"


async def test_closing_writes_what_is_held_first() -> None:
    transport = FakeTransport()
    one = OneWrite(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    one.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    one.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert transport.closed and one.is_closing()
