"""The Firebase emulator's tool endpoints (long-polling.md §6) against a real ``rtdb serve``:
``/.inspect/databases.json``, ``/<path>/.upload`` and ``/.settings/functionTriggers.json``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import error_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(inproc_server: Any) -> Any:
    """The app in this test process (conftest's ``InProcessServer``); tests that need a process
    of their own start one with ``server_factory``."""
    return inproc_server
OWNER = {"Authorization": "Bearer owner"}
RULES = '{"rules": {".read": true, "open": {".write": true}, "closed": {".write": false}}}'


def _upload(http: httpx.Client, path: str, content: bytes, *, field: str = "myFile",
            token: str | None = "owner", ns: str = "db") -> httpx.Response:
    params = {"ns": ns, "writeSizeLimit": "unlimited", "disableTriggers": "true"}
    if token is not None:
        params["access_token"] = token
    return http.post(f"{path}/.upload", params=params, files={field: ("data.json", content, "application/json")})


def test_databases_lists_the_namespaces_that_exist_to_anyone_cross_origin(http: httpx.Client) -> None:
    for ns in ("beta", "alpha"):
        assert http.put("/x.json", params={"ns": ns}, json=1, headers=OWNER).status_code == 200
    http.get("/x.json", params={"ns": "never-written"})  # a read creates no namespace
    r = http.get("/.inspect/databases.json", params={"ns": "alpha"}, headers={"Origin": "http://localhost:4000"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    names = [d["name"] for d in r.json()]
    assert "alpha" in names and "beta" in names and "never-written" not in names


def test_databases_is_for_admins_only_in_production_mode(server_factory: Any) -> None:
    server = server_factory("--admin-token", "sekret")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        admin_headers = {"Authorization": "Bearer sekret"}
        assert http.put("/x.json", params={"ns": "p"}, json=1, headers=admin_headers).status_code == 200
        error_of(http.get("/.inspect/databases.json"), 401)
        admin = http.get("/.inspect/databases.json", headers=admin_headers)
        assert admin.status_code == 200 and {"name": "p"} in admin.json()


def test_upload_sets_the_path_to_the_uploaded_json(http: httpx.Client) -> None:
    http.put("/a/b.json", params={"ns": "db"}, json={"old": 1}, headers=OWNER)
    r = _upload(http, "/a/b", b'{"x": {"y": [1, 2]}, "z": "s"}')
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    assert http.get("/a/b.json", params={"ns": "db"}).json() == {"x": {"y": [1, 2]}, "z": "s"}


def test_upload_at_the_root(http: httpx.Client) -> None:
    assert _upload(http, "", b'{"r": true}').status_code == 200
    assert http.get("/.json", params={"ns": "db"}).json() == {"r": True}


def test_upload_applies_the_callers_rules(http: httpx.Client) -> None:
    assert http.put("/.settings/rules.json", params={"ns": "db"}, content=RULES, headers=OWNER).status_code == 200
    assert _upload(http, "/open", b"1", token=None).status_code == 200
    error_of(_upload(http, "/closed", b"1", token=None), 401)
    assert _upload(http, "/closed", b"2").status_code == 200  # owner is admin
    assert http.get("/.json", params={"ns": "db"}).json() == {"open": 1, "closed": 2}


@pytest.mark.parametrize("content, field", [
    (b'{"x": ', "myFile"),           # bad JSON
    (b'{"x": 1}', "otherField"),     # missing field
])
def test_upload_of_bad_json_or_a_missing_field_is_400_and_writes_nothing(
    http: httpx.Client, content: bytes, field: str,
) -> None:
    http.put("/k.json", params={"ns": "db"}, json="kept", headers=OWNER)
    error_of(_upload(http, "/k", content, field=field), 400)
    assert http.get("/k.json", params={"ns": "db"}).json() == "kept"


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"myFile\"\r\n\r\n{}"),
    ("multipart/form-data", b"whatever"),
    ("application/json", b'{"a": 1}'),
    ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
])
def test_upload_of_bad_multipart_is_400_and_writes_nothing(http: httpx.Client, content_type: str, body: bytes) -> None:
    http.put("/k.json", params={"ns": "db"}, json="kept", headers=OWNER)
    r = http.post("/k/.upload", params={"ns": "db", "access_token": "owner"}, content=body,
                  headers={"Content-Type": content_type})
    error_of(r, 400)
    assert http.get("/k.json", params={"ns": "db"}).json() == "kept"


def test_function_triggers_are_accepted_and_ignored_for_admins(http: httpx.Client) -> None:
    trigger = {"name": "f", "path": "/x", "event": "providers/google.firebase.database/eventTypes/ref.write",
               "topic": "projects/demo/topics/f"}
    r = http.post("/.settings/functionTriggers.json", params={"ns": "db"}, json=trigger, headers=OWNER)
    assert r.status_code == 200, r.text
    error_of(http.post("/.settings/functionTriggers.json", params={"ns": "db"}, json=trigger), 401)


COVERED = ('{"rules": {".read": "auth != null", "open": {".write": true}, '
           '"msg": {".write": true, ".validate": "newData.val() !== \'<b>bad</b>\'"}}}')


def _coverage(http: httpx.Client, ns: str = "cov") -> dict[str, dict[str, Any]]:
    r = http.get("/.inspect/coverage.json", params={"ns": ns})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    body = r.json()
    assert body["namespace"] == ns
    return {rule["rulePath"]: rule for rule in body["rules"]}


def test_coverage_counts_the_rules_requests_ran_and_resets_on_deploy(http: httpx.Client) -> None:
    assert http.put("/.settings/rules.json", params={"ns": "cov"}, content=COVERED, headers=OWNER).status_code == 200
    http.put("/msg.json", params={"ns": "cov"}, json="hello")
    http.put("/msg.json", params={"ns": "cov"}, json="<b>bad</b>")
    http.get("/x.json", params={"ns": "cov"})
    http.get("/x.json", params={"ns": "cov"}, headers=OWNER)  # admin: rules bypassed, not counted
    rules = _coverage(http)
    assert list(rules) == ["/rules/.read", "/rules/open/.write", "/rules/msg/.write", "/rules/msg/.validate"]
    assert {k: v for k, v in rules["/rules/msg/.validate"].items() if k != "rulePath"} == {
        "expression": "newData.val() !== '<b>bad</b>'", "evaluations": 2, "true": 1, "false": 1, "errors": 0,
    }
    assert (rules["/rules/.read"]["true"], rules["/rules/.read"]["false"]) == (0, 1)
    assert rules["/rules/open/.write"]["evaluations"] == 0
    assert http.put("/.settings/rules.json", params={"ns": "cov"}, content=COVERED, headers=OWNER).status_code == 200
    assert all(rule["evaluations"] == 0 for rule in _coverage(http).values())


def test_coverage_html_shows_the_rules_escaped(http: httpx.Client) -> None:
    assert http.put("/.settings/rules.json", params={"ns": "cov"}, content=COVERED, headers=OWNER).status_code == 200
    http.put("/msg.json", params={"ns": "cov"}, json="hello")
    r = http.get("/.inspect/coverage", params={"ns": "cov"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/rules/msg/.validate" in r.text
    assert "&lt;b&gt;bad&lt;/b&gt;" in r.text and "<b>bad" not in r.text


def test_coverage_is_for_admins_only_in_production_mode(server_factory: Any) -> None:
    server = server_factory("--admin-token", "sekret")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in ("/.inspect/coverage.json", "/.inspect/coverage"):
            error_of(http.get(path, params={"ns": "p"}), 401)
            assert http.get(path, params={"ns": "p"}, headers={"Authorization": "Bearer sekret"}).status_code == 200
