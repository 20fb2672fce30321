"""Security rules and authentication over REST, against a real server with a rules file."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import RTDB, RunningServer

SECRET = "test-secret-" + "x" * 32

CHAT_RULES = """{
  // a chat app: per-user profiles, validated messages, rooms readable when signed in
  "rules": {
    "users": {
      "$uid": {
        ".read": "auth != null && auth.uid === $uid",
        ".write": "auth != null && auth.uid === $uid",
        "age": { ".validate": "newData.isNumber() && newData.val() >= 0" }
      }
    },
    "rooms": {
      "$room": {
        ".read": "auth != null",
        "messages": {
          ".indexOn": ["ts"],
          ".read": "query.orderByChild == 'ts' && query.limitToLast <= 50",
          "$msg": {
            ".write": "auth != null && !data.exists() && newData.child('uid').val() === auth.uid",
            ".validate": "newData.hasChildren(['uid', 'text', 'ts']) && newData.child('text').isString()
                          && newData.child('text').val().length < 200"
          }
        }
      }
    },
    "public": { ".read": true, ".write": "auth.token.admin === true" },
    "legacy": { ".read": "auth.role === 'mod'" }
  }
}"""


def id_token(uid: str, **claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"sub": uid, "user_id": uid, "iat": now, "exp": now + 3600,
                       "firebase": {"sign_in_provider": "password"}, **claims}, SECRET, algorithm="HS256")


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    file = tmp_path / "database.rules.json"
    file.write_text(CHAT_RULES)
    return file


@pytest.fixture
def rules_server(server_factory, rules_file: Path) -> RunningServer:  # type: ignore[no-untyped-def]
    return server_factory("--rules", str(rules_file), "--secret", SECRET, "--admin-token", "admin-tok")  # type: ignore[no-any-return]


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client(server: RunningServer, **kwargs: Any) -> httpx.Client:
    made = httpx.Client(base_url=server.url, **kwargs)
    _clients.append(made)
    return made


def admin(server: RunningServer) -> httpx.Client:
    return client(server, headers={"Authorization": "Bearer admin-tok"})


def as_user(server: RunningServer, uid: str, **claims: object) -> httpx.Client:
    return client(server, params={"auth": id_token(uid, **claims)})


def test_users_read_and_write_only_their_own_profile(rules_server: RunningServer) -> None:
    alice, bob = as_user(rules_server, "alice"), as_user(rules_server, "bob")
    assert alice.put("/users/alice.json", json={"name": "Alice", "age": 30}).status_code == 200
    denied = bob.put("/users/alice.json", json={"name": "Mallory"})
    assert denied.status_code == 401 and denied.json() == {"error": "Permission denied"}
    assert bob.get("/users/alice.json").status_code == 401
    assert alice.get("/users/alice.json").json() == {"name": "Alice", "age": 30}
    assert httpx.get(rules_server.url + "/users/alice.json").status_code == 401


def test_a_denied_or_invalid_write_leaves_the_data_unchanged(rules_server: RunningServer) -> None:
    alice = as_user(rules_server, "alice")
    alice.put("/users/alice.json", json={"age": 30})
    assert alice.put("/users/alice/age.json", json=-1).status_code == 401
    assert alice.patch("/users.json", json={"alice/age": 31, "bob/age": 5}).status_code == 401, "all-or-nothing"
    assert admin(rules_server).get("/users.json").json() == {"alice": {"age": 30}}


def test_validate_rules_check_the_merged_result_of_a_patch(rules_server: RunningServer) -> None:
    alice = as_user(rules_server, "alice")
    msg = {"uid": "alice", "text": "hi", "ts": 1}
    assert alice.put("/rooms/r1/messages/m1.json", json=msg).status_code == 200
    assert alice.put("/rooms/r1/messages/m1.json", json=msg).status_code == 401, "!data.exists()"
    assert alice.put("/rooms/r1/messages/m2.json", json={"uid": "alice", "text": 5, "ts": 2}).status_code == 401
    assert alice.put("/rooms/r1/messages/m3.json", json={"uid": "bob", "text": "x", "ts": 3}).status_code == 401
    ok = alice.patch("/rooms/r1/messages.json", json={"m4": {**msg, "ts": 4}, "m5": {**msg, "ts": 5}})
    assert ok.status_code == 200


def test_query_rules_see_the_query(rules_server: RunningServer) -> None:
    alice = as_user(rules_server, "alice")
    for i in range(5):
        alice.put(f"/rooms/r1/messages/m{i}.json", json={"uid": "alice", "text": "t", "ts": i})
    anon = client(rules_server)
    ok = anon.get("/rooms/r1/messages.json", params={"orderBy": '"ts"', "limitToLast": "2"})
    assert ok.status_code == 200 and sorted(ok.json()) == ["m3", "m4"]
    assert anon.get("/rooms/r1/messages.json", params={"orderBy": '"ts"', "limitToLast": "100"}).status_code == 401
    assert anon.get("/rooms/r1/messages.json").status_code == 401
    big = alice.get("/rooms/r1/messages.json", params={"orderBy": '"ts"', "limitToLast": "100"})
    assert big.status_code == 200, "rules are not filters: the grant on $room covers every query below it"


def test_custom_claims_and_legacy_tokens(rules_server: RunningServer) -> None:
    assert as_user(rules_server, "a").put("/public/x.json", json=1).status_code == 401
    assert as_user(rules_server, "a", admin=True).put("/public/x.json", json=1).status_code == 200
    admin(rules_server).put("/legacy.json", json={"v": 1})
    legacy = jwt.encode({"v": 0, "iat": int(time.time()), "d": {"uid": "m", "role": "mod"}}, SECRET,
                        algorithm="HS256")
    assert httpx.get(rules_server.url + "/legacy.json", params={"auth": legacy}).json() == {"v": 1}
    legacy_admin = jwt.encode({"v": 0, "iat": int(time.time()), "d": {}, "admin": True}, SECRET, algorithm="HS256")
    assert httpx.put(rules_server.url + "/anything.json", params={"auth": legacy_admin}, json=1).status_code == 200
    assert httpx.get(rules_server.url + "/anything.json", params={"auth": SECRET}).json() == 1, "secret is admin"


def test_expired_forged_and_unsigned_tokens_get_401_with_firebase_messages(rules_server: RunningServer) -> None:
    now = int(time.time())
    expired = jwt.encode({"sub": "a", "iat": now - 7200, "exp": now - 3600}, SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "a", "iat": now, "exp": now + 60}, "another-secret-" + "y" * 32, algorithm="HS256")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"sub": "a", "iat": now}).encode()).rstrip(b"=").decode()
    unsigned = f"{header}.{body}."
    for token, message in [(expired, "Auth token is expired"), (forged, "Auth token used in the request is invalid"),
                           (unsigned, "Auth token used in the request is invalid")]:
        response = httpx.get(rules_server.url + "/public.json", params={"auth": token})
        assert (response.status_code, response.json()) == (401, {"error": message})
        response = httpx.get(rules_server.url + "/public.json", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_admin_bypasses_rules_and_auth_variable_override_downscopes(rules_server: RunningServer) -> None:
    root = admin(rules_server)
    assert root.put("/users/zed.json", json={"age": -5}).status_code == 200, "admins skip .validate too"
    as_zed = root.get("/users/zed.json", params={"auth_variable_override": '{"uid":"zed"}'})
    assert as_zed.status_code == 200
    as_other = root.get("/users/zed.json", params={"auth_variable_override": '{"uid":"other"}'})
    assert as_other.status_code == 401
    assert root.get("/users/zed.json", params={"auth_variable_override": "null"}).status_code == 401


def test_rules_endpoint_reads_and_deploys_per_namespace_for_admins_only(rules_server: RunningServer) -> None:
    root = admin(rules_server)
    assert root.get("/.settings/rules.json").text == CHAT_RULES
    assert httpx.get(rules_server.url + "/.settings/rules.json").status_code == 401
    assert as_user(rules_server, "a").put("/.settings/rules.json", content="{}").status_code == 401
    bad = root.put("/.settings/rules.json", params={"ns": "other"}, content='{"rules": {".read": "nope"}}')
    assert bad.status_code == 400 and "1:" in bad.json()["error"]
    opened = root.put("/.settings/rules.json", params={"ns": "other"}, content='{"rules": {".read": true}}')
    assert opened.status_code == 200
    assert httpx.get(rules_server.url + "/x.json", params={"ns": "other"}).status_code == 200
    assert httpx.get(rules_server.url + "/users/a.json").status_code == 401, "default namespace keeps its rules"
    rules_server.restart()
    assert httpx.get(rules_server.url + "/x.json", params={"ns": "other"}).status_code == 200, "deployed rules persist"


def test_a_dry_run_deploy_checks_the_rules_and_installs_nothing(rules_server: RunningServer) -> None:
    root = admin(rules_server)
    opened = '{"rules": {".read": true}}'
    bad = root.put("/.settings/rules.json", params={"dryRun": "true"}, content='{"rules": {".read": "nope"}}')
    assert bad.status_code == 400 and "1:" in bad.json()["error"]
    assert root.put("/.settings/rules.json", params={"dryRun": "true"}, content=opened).status_code == 200
    assert root.get("/.settings/rules.json").text == CHAT_RULES
    assert httpx.get(rules_server.url + "/users/a.json").status_code == 401, "the old rules still decide"
    denied = as_user(rules_server, "a").put("/.settings/rules.json", params={"dryRun": "true"}, content=opened)
    assert denied.status_code == 401


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_hot_reload_swaps_good_rules_and_keeps_old_ones_on_error(rules_server: RunningServer,
                                                                 rules_file: Path) -> None:
    anon = client(rules_server)
    assert anon.get("/public.json").status_code == 200
    rules_file.write_text('{"rules": {"public": {".read": false}}}')
    assert _wait_for(lambda: anon.get("/public.json").status_code == 401)
    rules_file.write_text('{"rules": {"public": {".read": "nope("}}}')
    assert "not reloaded" in _wait_and_read_log(rules_server, "not reloaded")
    assert anon.get("/public.json").status_code == 401, "the broken file did not replace the rules"
    rules_file.write_text('{"rules": {"public": {".read": true}}}')
    assert _wait_for(lambda: anon.get("/public.json").status_code == 200)


def _wait_and_read_log(server: RunningServer, needle: str) -> str:
    _wait_for(lambda: needle in server.log())
    return server.log()


def test_a_stream_is_cancelled_when_rules_take_read_access_away(rules_server: RunningServer,
                                                               rules_file: Path) -> None:
    with httpx.Client(timeout=10) as client, client.stream(
        "GET", rules_server.url + "/public.json", headers={"Accept": "text/event-stream"}
    ) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: put"
        rules_file.write_text('{"rules": {}}')
        seen = []
        for line in lines:
            seen.append(line)
            if line == "event: cancel":
                break
        assert "event: cancel" in seen


def test_a_server_with_a_broken_rules_file_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "rules": {\n    "a": {".read": "unknown_var"}\n  }\n}')
    result = subprocess.run([RTDB, "serve", "--rules", str(bad), "--port", "0", "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "/rules/a/.read: 3:21" in result.stderr


def test_rules_cli_check_and_simulate(tmp_path: Path, rules_file: Path) -> None:
    ok = subprocess.run([RTDB, "rules", "check", str(rules_file)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"users": {"alice": {"age": 3}}}))
    allowed = subprocess.run([RTDB, "rules", "simulate", str(rules_file), "--data", str(data), "--auth",
                              '{"uid": "alice"}', "read", "/users/alice"], capture_output=True, text=True)
    assert allowed.returncode == 0 and "ALLOWED" in allowed.stdout and ".read" in allowed.stdout
    denied = subprocess.run([RTDB, "rules", "simulate", str(rules_file), "--auth", '{"uid": "bob"}', "write",
                             "/users/alice/age", "4"], capture_output=True, text=True)
    assert denied.returncode == 1 and "DENIED" in denied.stdout
    assert sys.executable
