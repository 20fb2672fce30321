"""What a real `rtdb serve` promises across a crash, and who it lets in.

An acknowledged write (a 2xx answer) must survive SIGKILL of the server
straight after the acknowledgement; a production-mode server (no
``--emulator``) lets only admin credentials in while it has no rules.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

PERMISSION_DENIED = {"error": "Permission denied"}


def read(url: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{url}{path}.json", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# -- crash durability ---------------------------------------------------------------


def test_every_acknowledged_write_survives_sigkill_right_after_the_last_acknowledgement(server: Any) -> None:
    workers, puts_each, patches_each = 10, 30, 10
    expected: dict[str, Any] = {}
    lock = threading.Lock()

    def write(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i in range(puts_each):
                value = {"worker": worker, "i": i, "text": f"w{worker}-{i} ✓", "f": i / 7}
                response = client.put(f"/puts/w{worker}_{i}.json", content=json.dumps(value))
                assert response.status_code == 200, response.text
                with lock:
                    expected[f"puts/w{worker}_{i}"] = value
            for i in range(patches_each):
                update = {f"w{worker}/p{i}/a": i, f"w{worker}/p{i}/b": [worker, i], f"shared/w{worker}": i}
                response = client.patch("/patches.json", params={"print": "silent"}, content=json.dumps(update))
                assert response.status_code == 204, response.text
                with lock:
                    expected[f"patches/w{worker}/p{i}"] = {"a": i, "b": [worker, i]}
                    expected[f"patches/shared/w{worker}"] = i
            response = client.put("/counter.json", content=json.dumps({".sv": {"increment": 1}}))
            assert response.status_code == 200

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, range(workers)))
    server.kill()  # straight after the last acknowledgement: no shutdown code runs
    server.start()

    assert len(expected) == workers * (puts_each + patches_each + 1)
    everything = read(server.url, "/")
    for path, value in expected.items():
        node = everything
        for key in path.split("/"):
            node = node[key]
        assert node == value, path
    assert len(everything["puts"]) == workers * puts_each
    assert everything["counter"] == workers


def test_acknowledged_deletes_and_pushes_survive_sigkill(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.put("/doomed.json", content=b'{"a": {"b": 1}, "keep": 2}').status_code == 200
        names = [client.post("/log.json", content=json.dumps(i)).json()["name"] for i in range(50)]
        assert client.delete("/doomed/a.json").status_code == 200
        assert client.put("/doomed/.priority.json", content=b"5").status_code == 200
    server.kill()
    server.start()
    assert read(server.url, "/doomed", format="export") == {"keep": 2, ".priority": 5}
    log = read(server.url, "/log")
    assert sorted(log) == names
    assert [log[n] for n in names] == list(range(50))


def test_writes_racing_a_sigkill_are_all_present_when_acknowledged(server: Any) -> None:
    """Writers keep going while the server is killed: whatever was acknowledged is stored."""
    acknowledged: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def write(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(10_000):
                n = worker * 100_000 + i
                try:
                    response = client.put(f"/race/k{n}.json", content=str(n).encode())
                except httpx.HTTPError:
                    return
                if response.status_code != 200:
                    return
                with lock:
                    acknowledged.append(n)
                    if len(acknowledged) >= 200:
                        enough.set()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(write, w) for w in range(6)]
        assert enough.wait(timeout=120)
        server.kill()
        for future in futures:
            future.result(timeout=60)
    server.start()
    stored = read(server.url, "/race")
    assert stored is not None
    missing = [n for n in acknowledged if stored.get(f"k{n}") != n]
    assert missing == []


# -- production mode ----------------------------------------------------------------


@pytest.fixture
def production(server_factory: Callable[..., Any]) -> Iterator[Any]:
    yield server_factory("--admin-token", "T0ken")


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("PUT", b'"x"'), ("POST", b'"x"'), ("PATCH", b'{"a": 1}'), ("DELETE", None)],
)
def test_production_server_refuses_anonymous_requests_with_permission_denied(
    production: Any, method: str, body: bytes | None
) -> None:
    with httpx.Client(base_url=production.url, timeout=30) as client:
        admin = {"Authorization": "Bearer T0ken"}
        assert client.put("/data.json", content=b'{"secret": 1}', headers=admin).status_code == 200
        for path in ("/data.json", "/.json", "/data/secret.json", "/elsewhere.json"):
            response = client.request(method, path, content=body)
            assert response.status_code == 401, (path, response.text)
            assert response.json() == PERMISSION_DENIED
        assert client.get("/data.json", headers=admin).json() == {"secret": 1}
        assert client.get("/elsewhere.json", headers=admin).json() is None


def test_production_server_accepts_the_admin_token_as_bearer_or_auth_parameter(production: Any) -> None:
    with httpx.Client(base_url=production.url, timeout=30) as client:
        bearer = {"Authorization": "Bearer T0ken"}
        assert client.put("/a.json", content=b'{"b": 1}', headers=bearer).json() == {"b": 1}
        assert client.patch("/a.json", content=b'{"c": 2}', headers=bearer).status_code == 200
        assert client.post("/a/list.json", content=b"3", headers=bearer).status_code == 200
        assert client.get("/a/b.json", headers=bearer).json() == 1
        assert client.get("/a/c.json", params={"auth": "T0ken"}).json() == 2
        assert client.delete("/a.json", headers=bearer).status_code == 200
        assert client.get("/a.json", headers=bearer).json() is None


@pytest.mark.parametrize("authorization", ["Bearer owner", "Bearer wrong", "Bearer t0ken"])
def test_production_server_rejects_other_bearer_tokens(production: Any, authorization: str) -> None:
    with httpx.Client(base_url=production.url, timeout=30) as client:
        response = client.put("/a.json", content=b"1", headers={"Authorization": authorization})
        assert response.status_code == 401
        assert isinstance(response.json()["error"], str)
        assert client.get("/a.json", headers={"Authorization": "Bearer T0ken"}).json() is None


def test_emulator_server_treats_bearer_owner_as_admin_and_anonymous_as_allowed(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.put("/a.json", content=b"1", headers={"Authorization": "Bearer owner"}).status_code == 200
        assert client.get("/a.json").json() == 1
