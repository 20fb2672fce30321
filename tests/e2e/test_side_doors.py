"""No side door around the rules, on a production-mode server (``--rules`` + ``--secret``):
preconditions, transaction hashes, namespace creation and session ids reveal or
change nothing the rules deny."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import RunningServer
from websockets.sync.client import ClientConnection, connect

from rtdb.core.hash import etag, node_hash

pytestmark = pytest.mark.e2e

SECRET = "side-door-secret-" + "x" * 32
RULES = """{
  "rules": {
    "vault": { ".read": false, ".write": false },
    "dropbox": { ".read": false, ".write": true },
    "users": { "$uid": { ".read": "auth.uid === $uid", ".write": "auth.uid === $uid" } },
    "open": { ".read": true, ".write": true }
  }
}"""
ADMIN = {"Authorization": "Bearer admin-tok"}


def user_token(uid: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": uid, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


@pytest.fixture
def prod(server_factory, tmp_path: Path) -> RunningServer:  # type: ignore[no-untyped-def]
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server: RunningServer = server_factory("--rules", str(rules), "--secret", SECRET, "--admin-token", "admin-tok")
    for path, value in {"vault/pin": "4711", "dropbox/note": "secret", "users/bob": {"pin": "1234"}}.items():
        assert httpx.put(f"{server.url}/{path}.json", json=value, headers=ADMIN).status_code == 200
    return server


def stored(server: RunningServer, path: str) -> Any:
    return httpx.get(f"{server.url}/{path}.json", headers=ADMIN).json()


# -- 1. a precondition never reveals what the rules deny -----------------------------------------
@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST-override-PUT", "POST-override-DELETE"])
def test_a_write_denied_by_the_rules_is_401_whatever_the_if_match(prod: RunningServer, method: str) -> None:
    headers = {"if-match": "x"}
    verb = method
    if method.startswith("POST-override-"):
        verb = "POST"
        headers["X-HTTP-Method-Override"] = method.rsplit("-", 1)[1]
    for path in ("vault/pin", "users/bob"):
        kwargs: dict[str, Any] = {"content": b'"guess"'} if verb != "DELETE" else {}
        answer = httpx.request(verb, f"{prod.url}/{path}.json", headers=headers,
                               params={"auth": user_token("mallory")}, **kwargs)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"error": "Permission denied"}
        assert "etag" not in answer.headers
    assert stored(prod, "vault/pin") == "4711" and stored(prod, "users/bob") == {"pin": "1234"}


def test_a_failed_precondition_shows_the_value_only_to_a_caller_who_may_read_it(prod: RunningServer) -> None:
    blind = httpx.put(f"{prod.url}/dropbox/note.json", content=b'"mine"', headers={"if-match": "x"})
    assert blind.status_code == 412
    assert "secret" not in blind.text and "etag" not in blind.headers
    assert stored(prod, "dropbox/note") == "secret"

    bob = {"auth": user_token("bob")}
    seen = httpx.put(f"{prod.url}/users/bob.json", content=b"{}", headers={"if-match": "x"}, params=bob)
    assert seen.status_code == 412
    assert seen.json() == {"pin": "1234"} and seen.headers["etag"] == etag({"pin": "1234"})
    right = httpx.put(f"{prod.url}/dropbox/note.json", content=b'"mine"', headers={"if-match": etag("secret")})
    assert right.status_code == 200 and stored(prod, "dropbox/note") == "mine"


# -- 2. a transaction is not a guessing oracle ---------------------------------------------------
@contextmanager
def ws_open(server: RunningServer, query: str = "ns=default") -> Iterator[tuple[ClientConnection, str]]:
    with connect(f"ws://{server.host}/.ws?v=5&{query}", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        yield ws, hello["d"]["d"]["s"]


def ws_call(ws: ClientConnection, r: int, action: str, body: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps({"t": "d", "d": {"r": r, "a": action, "b": body}}))
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["t"] == "d" and msg["d"].get("r") == r:
            return msg["d"]["b"]  # type: ignore[no-any-return]


def test_a_transaction_on_a_denied_path_is_denied_for_the_right_hash_and_the_wrong_one(prod: RunningServer) -> None:
    with ws_open(prod) as (ws, _):
        wrong = ws_call(ws, 1, "p", {"p": "/vault/pin", "d": "x", "h": node_hash("0000")})
        right = ws_call(ws, 2, "p", {"p": "/vault/pin", "d": "x", "h": node_hash("4711")})
    assert wrong["s"] == right["s"] == "permission_denied"
    assert stored(prod, "vault/pin") == "4711"


# -- 3. a refused or unknown request creates nothing -----------------------------------------------
def open_fds(server: RunningServer) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def namespace_files(server: RunningServer) -> list[str]:
    if not server.data_dir.exists():
        return []
    return sorted(p.name for p in server.data_dir.iterdir() if p.name.endswith((".sqlite", "-wal", "-shm")))


def test_denied_requests_on_new_namespaces_create_no_files_and_hold_no_descriptors(prod: RunningServer) -> None:
    before_files = namespace_files(prod)
    with httpx.Client(base_url=prod.url) as anon:
        anon.get("/x.json", params={"ns": "warmup"})
        before_fds = open_fds(prod)
        for i in range(300):
            assert anon.get("/vault.json", params={"ns": f"probe{i}"}).status_code == 401
            assert anon.put("/vault.json", params={"ns": f"probe{i}"}, content=b"1").status_code == 401
            assert anon.patch("/x.json", params={"ns": f"probe{i}"}, content=b'{"a":1}').status_code == 401
            assert anon.get("/open.json", params={"ns": f"probe{i}", "shallow": "true"}).json() is None
        after_fds = open_fds(prod)
    assert namespace_files(prod) == before_files
    assert after_fds - before_fds < 20, (before_fds, after_fds)


def test_a_namespace_that_does_not_exist_reads_as_an_empty_database(server: RunningServer) -> None:
    for params in ({}, {"shallow": "true"}, {"orderBy": '"$key"', "limitToFirst": "2"}, {"format": "export"}):
        answer = httpx.get(f"{server.url}/a/b.json", params={"ns": "ghost", **params})
        assert answer.status_code == 200 and answer.json() is None, params
    assert httpx.get(f"{server.url}/.json", params={"ns": "ghost"}, headers={"X-Firebase-ETag": "true"}).headers[
        "etag"] == etag(None)
    assert not (server.data_dir / "ghost.sqlite").exists()
    assert httpx.put(f"{server.url}/a.json", params={"ns": "ghost"}, content=b"1").status_code == 200
    assert (server.data_dir / "ghost.sqlite").exists()


def test_only_an_allowed_write_creates_a_namespace(prod: RunningServer) -> None:
    assert httpx.put(f"{prod.url}/vault/x.json", params={"ns": "fresh"}, content=b"1").status_code == 401
    assert not (prod.data_dir / "fresh.sqlite").exists()
    assert httpx.put(f"{prod.url}/open/x.json", params={"ns": "fresh"}, content=b"1").status_code == 200
    assert (prod.data_dir / "fresh.sqlite").exists()
    assert httpx.get(f"{prod.url}/open.json", params={"ns": "fresh"}).json() == {"x": 1}


@pytest.mark.parametrize("name", ["abc\n", "abc\r\n", "../etc", "a.b", "-lead", "x" * 64, "é"])
def test_a_malformed_namespace_is_refused_and_creates_nothing(server: RunningServer, name: str) -> None:
    for method in ("GET", "PUT"):
        answer = httpx.request(method, f"{server.url}/a.json", params={"ns": name}, content=b"1",
                               headers={"Authorization": "Bearer owner"})
        assert answer.status_code == 404 and "Invalid namespace" in answer.json()["error"], answer.text
    assert namespace_files(server) == []


def test_a_listener_on_a_namespace_that_does_not_exist_hears_the_write_that_creates_it(
    server: RunningServer,
) -> None:
    with ws_open(server, "ns=later") as (ws, _):
        listen = ws_call(ws, 1, "q", {"p": "/room", "h": ""})
        assert listen["s"] == "ok"
        assert not (server.data_dir / "later.sqlite").exists()
        assert httpx.put(f"{server.url}/room/msg.json", params={"ns": "later"}, content=b'"hi"').status_code == 200
        while True:
            msg = json.loads(ws.recv(timeout=10))
            if msg["t"] == "d" and msg["d"].get("a") == "d":
                break
    assert msg["d"]["b"] == {"p": "room/msg", "d": "hi"}


# -- 4. session ids are unguessable and ls= ends only the caller's own session --------------------
def ws_auth(ws: ClientConnection, r: int, uid: str) -> None:
    assert ws_call(ws, r, "auth", {"cred": user_token(uid)})["s"] == "ok"


def test_session_ids_are_128_random_bits(prod: RunningServer) -> None:
    ids = []
    for _ in range(3):
        with ws_open(prod) as (_, sid):
            ids.append(sid)
    assert len(set(ids)) == 3
    assert all(len(bytes.fromhex(sid)) == 16 for sid in ids)


def test_naming_another_users_session_ends_nothing_and_runs_no_ondisconnect(prod: RunningServer) -> None:
    with ws_open(prod) as (bob_ws, bob_sid):
        ws_auth(bob_ws, 1, "bob")
        assert ws_call(bob_ws, 2, "o", {"p": "/users/bob/online", "d": False})["s"] == "ok"
        with ws_open(prod, f"ns=default&ls={bob_sid}") as (mallory_ws, _):
            ws_auth(mallory_ws, 1, "mallory")
            assert ws_call(bob_ws, 3, "g", {"p": "/users/bob/pin", "q": {}})["s"] == "ok", "bob is still connected"
        assert stored(prod, "users/bob") == {"pin": "1234"}, "bob's onDisconnect did not run"


def test_the_same_user_coming_back_with_ls_ends_the_old_session(prod: RunningServer) -> None:
    with ws_open(prod) as (old_ws, old_sid):
        ws_auth(old_ws, 1, "bob")
        assert ws_call(old_ws, 2, "o", {"p": "/users/bob/online", "d": False})["s"] == "ok"
        with ws_open(prod, f"ns=default&ls={old_sid}") as (new_ws, _):
            ws_auth(new_ws, 1, "bob")
            deadline = time.monotonic() + 10
            while stored(prod, "users/bob/online") is not False and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stored(prod, "users/bob/online") is False, "the old session's onDisconnect ran"
