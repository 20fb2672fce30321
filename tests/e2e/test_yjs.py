"""Yjs documents against a real ``rtdb serve`` through the Python SDK (pycrdt): a restart keeps
the document, random concurrent edits converge with the mirror equal to the document, and bad
input gets a close code, never a crash."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from pycrdt import Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rtdb.protocol.yjs import encode_update
from rtdb_sdk import open_doc

pytestmark = pytest.mark.e2e


async def until(check: Any, what: str, timeout: float = 15.0) -> None:
    async def loop() -> None:
        while not check():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def mirror(server: Any, ns: str, path: str) -> Any:
    return httpx.get(f"{server.url}/{path}.json?ns={ns}").json()


async def test_a_document_survives_a_server_restart(server: Any) -> None:
    url = f"{server.url}?ns=yrestart"
    async with open_doc(url, "notes/a") as session:
        await session.synced()
        session.doc.get("content", type=Text).insert(0, "kept across restarts")
        await until(lambda: mirror(server, "yrestart", "notes/a") == {"content": "kept across restarts"}, "mirror")
    server.restart()
    async with open_doc(url, "notes/a") as session:
        await session.synced()
        assert str(session.doc.get("content", type=Text)) == "kept across restarts"


async def test_random_concurrent_edits_from_several_clients_converge_and_match_the_mirror(server: Any) -> None:
    url = f"{server.url}?ns=yfuzz"
    rng = random.Random(16)
    async with open_doc(url, "fuzz") as a, open_doc(url, "fuzz") as b, open_doc(url, "fuzz") as c:
        sessions = [a, b, c]
        for s in sessions:
            await s.synced()
        texts = [s.doc.get("content", type=Text) for s in sessions]
        for _ in range(300):
            i = rng.randrange(3)
            text = texts[i]
            if len(text) > 0 and rng.random() < 0.3:
                start = rng.randrange(len(text))
                del text[start:min(len(text), start + rng.randint(1, 3))]
            else:
                text.insert(rng.randint(0, len(text)), rng.choice("abcxyz "))
            if rng.random() < 0.2:
                await asyncio.sleep(0)  # let some edits cross in flight
        await until(lambda: str(texts[0]) == str(texts[1]) == str(texts[2]), "convergence")
        final = str(texts[0])
        await until(lambda: mirror(server, "yfuzz", "fuzz") == ({"content": final} if final else None), "mirror")


async def test_an_sdk_editor_sees_another_editors_text(server: Any) -> None:
    url = f"{server.url}?ns=ysdk"
    async with open_doc(url, "shared") as a, open_doc(url, "shared") as b:
        await a.synced()
        await b.synced()
        a.doc.get("content", type=Text).insert(0, "from a")
        tb = b.doc.get("content", type=Text)
        await until(lambda: str(tb) == "from a", "b to see a")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x09\x00", 4400),                      # unknown message type
        (b"\x00\x02\x05ab", 4400),                # truncated
        (encode_update(b"\x07garbage"), 4400),    # not a Yjs update
        (b"\x00\x02" + b"\xff\xff\xff\x07" + b"x" * (9 * 1024 * 1024), 1009),  # over the size limit
    ],
)
async def test_bad_input_is_closed_with_a_clear_code_and_the_server_keeps_serving(server: Any, frame: bytes,
                                                                                   code: int) -> None:
    async with connect(f"ws://{server.host}/.yjs/bad?ns=ybad", max_size=None) as ws:
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == code
    async with open_doc(f"{server.url}?ns=ybad", "good") as session:
        await session.synced()
        session.doc.get("content", type=Text).insert(0, "fine")
        await until(lambda: mirror(server, "ybad", "good") == {"content": "fine"}, "server still serving")
