"""Large writes against a real `rtdb serve`: over the native WebSocket, a large write
and the small writes pipelined behind it apply in order; over REST, the echo is right."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import RunningServer
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

CHILDREN = 50_000  # well above the size validated in a thread


def test_writes_pipelined_behind_a_large_one_apply_after_it(server: RunningServer) -> None:
    large = {f"k{i:06d}": f"value {i}" for i in range(CHILDREN)}
    with connect(f"ws://{server.host}/.ws?v=5&ns=big", open_timeout=5, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=5))["d"]["t"] == "h"
        ws.send(json.dumps({"t": "d", "d": {"r": 1, "a": "p", "b": {"p": "/x", "d": large}}}))
        ws.send(json.dumps({"t": "d", "d": {"r": 2, "a": "p", "b": {"p": "/x/k000000", "d": "changed"}}}))
        ws.send(json.dumps({"t": "d", "d": {"r": 3, "a": "p", "b": {"p": "/y", "d": 1}}}))
        acks = []
        while len(acks) < 3:
            message = json.loads(ws.recv(timeout=30))
            if "r" in message["d"]:
                acks.append((message["d"]["r"], message["d"]["b"]["s"]))
    assert acks == [(1, "ok"), (2, "ok"), (3, "ok")]
    stored = httpx.get(server.url + "/x.json?ns=big", timeout=30).json()
    assert len(stored) == CHILDREN and stored["k000000"] == "changed" and stored["k000001"] == "value 1"


def test_a_large_rest_put_echoes_what_was_written(server: RunningServer) -> None:
    large = {f"k{i:06d}": {"n": i, "s": f"v{i}"} for i in range(CHILDREN // 2)}
    response = httpx.put(server.url + "/big.json", json=large, timeout=60)
    assert response.status_code == 200 and response.json() == large
    assert httpx.get(server.url + "/big/k000007.json", timeout=10).json() == {"n": 7, "s": "v7"}
