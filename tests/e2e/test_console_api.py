"""The console's server side through a real `rtdb serve`: the first-start admin token, the
console API (info, namespaces, simulate, the live log and change streams), `/metrics` counted
exactly after a known workload (parsed with prometheus-client's parser), admin-only access,
and the JSON log format with access and denial lines."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_helpers import wires
from conftest import RunningServer
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e

RULES = """{
  "rules": {
    "open": {".read": true, ".write": true},
    "secret": {".read": "auth != null", ".write": "auth != null && newData.isString()"}
  }
}"""


def printed_url(server: RunningServer) -> str:
    found = re.findall(r"Console: (http://\S+)", server.log())
    assert found, server.log()
    return found[-1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sse_events(
    url: str, headers: dict[str, str], until: Any, trigger: Any, timeout: float = 10,
) -> list[dict[str, Any]]:
    """The ``data`` of the events of the stream at ``url`` until ``until(events)`` holds; ``trigger()``
    runs once the stream is open."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        threading.Thread(target=trigger, daemon=True).start()
        for line in response.iter_lines():
            if line.startswith("data: ") and line[6:].strip():
                events.append(json.loads(line[6:]))
                if until(events):
                    return events
    raise AssertionError(f"the stream ended first: {events}")


def test_a_first_production_start_makes_an_admin_token_once_and_keeps_it_private(server_factory: Any,
                                                                                tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = server_factory(data_dir=data)
    url = printed_url(server)
    token = url.split("?token=", 1)[1]
    assert url == f"{server.url}/?token={token}"
    file = data / "admin-token"
    assert file.read_text().strip() == token
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert "made an admin token" in server.log()

    info = httpx.get(f"{server.url}/.console/api/info", headers=bearer(token))
    assert info.status_code == 200 and info.json()["mode"] == "production"
    assert httpx.get(f"{server.url}/.console/api/info").status_code == 401
    wrong = httpx.get(f"{server.url}/.console/api/info", headers=bearer("not-" + token))
    assert wrong.status_code == 401 and "error" in wrong.json()
    # the token is the admin credential of the whole API; anonymous callers get nothing (no rules file)
    assert httpx.put(f"{server.url}/a.json?auth={token}", json=1).status_code == 200
    assert httpx.get(f"{server.url}/a.json").status_code == 401
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    server.restart()
    assert printed_url(server) == url  # reused, not made again
    assert server.log().count("made an admin token") == 0
    os.chmod(file, 0o644)
    server.restart()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # narrowed before use


def test_an_admin_token_given_is_used_and_no_file_is_made(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory("--admin-token", "given-token", data_dir=tmp_path / "d")
    assert printed_url(server) == f"{server.url}/"
    assert not (tmp_path / "d" / "admin-token").exists()
    assert httpx.get(f"{server.url}/.console/api/info", headers=bearer("given-token")).status_code == 200


def test_metrics_count_a_known_workload_exactly_and_are_admin_only(server_factory: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules), "--admin-token", "adm")
    for i in range(5):
        assert httpx.put(f"{server.url}/open/r{i}.json", json=i).status_code == 200
    for _ in range(3):
        assert httpx.get(f"{server.url}/secret.json").status_code == 401
    for _ in range(2):
        assert httpx.put(f"{server.url}/secret/x.json", json="v").status_code == 401
    with wires(server.host, 1, ns="default") as (w,):
        for i in range(4):
            assert w.request("p", {"p": f"/open/w{i}", "d": i})["s"] == "ok"
        assert w.request("p", {"p": "/secret/y", "d": "v"})["s"] == "permission_denied"
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        text = httpx.get(f"{server.url}/metrics", headers=bearer("adm")).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("rtdb_requests_total", transport="rest", outcome="ok") == 5
    assert value("rtdb_requests_total", transport="rest", outcome="denied") == 5
    assert value("rtdb_requests_total", transport="ws", outcome="received") == 5
    assert value("rtdb_rules_denials_total") == 3 + 2 + 1
    assert value("rtdb_writes_total", outcome="ok") == 5 + 4
    assert value("rtdb_writes_total", outcome="denied") == 2 + 1
    assert value("rtdb_connections", transport="ws") == 1
    assert value("rtdb_commit_ops_total", ns="default") == 5 + 4 + 2 + 1  # denied ops ran in groups too
    assert value("rtdb_commit_op_errors_total", ns="default") == 3
    assert value("rtdb_open_namespaces") == 1

    public = server_factory("--metrics-public")
    assert httpx.get(f"{public.url}/metrics").status_code == 200


def test_simulate_explains_the_rules_on_the_current_data(server_factory: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules), "--admin-token", "adm")
    api = f"{server.url}/.console/api/simulate"
    denied = httpx.post(api, headers=bearer("adm"), json={"ns": "default", "op": "write", "path": "/secret/x",
                                                          "value": 5, "auth": {"uid": "u1"}}).json()
    assert denied["allowed"] is False
    assert any("/rules/secret/.write" in line and "false" in line for line in denied["trace"])
    allowed = httpx.post(api, headers=bearer("adm"), json={"ns": "default", "op": "write", "path": "/secret",
                                                           "value": "s", "auth": {"uid": "u1"}}).json()
    assert allowed["allowed"] is True
    bad = httpx.post(api, headers=bearer("adm"), json={"ns": "default", "op": "delete", "path": "/"})
    assert bad.status_code == 400 and "op" in bad.json()["error"]
    bad_ns = httpx.post(api, headers=bearer("adm"), json={"ns": "no such", "op": "read"})
    assert bad_ns.status_code == 404 and "namespace" in bad_ns.json()["error"]
    assert httpx.post(api, json={"ns": "default", "op": "read"}).status_code == 401
    assert httpx.get(f"{server.url}/secret.json?auth=adm").json() is None  # nothing was written


def test_the_log_stream_shows_requests_and_denials_with_the_rule_that_decided(server_factory: Any,
                                                                              tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules), "--admin-token", "adm")

    def workload() -> None:
        httpx.put(f"{server.url}/open/a.json", json=1)
        httpx.put(f"{server.url}/secret/b.json", json="v")

    events = sse_events(f"{server.url}/.console/api/log?token=adm", {},
                        lambda ev: any(e["kind"] == "request" and e["path"] == "/secret/b.json" for e in ev),
                        workload)
    denial = next(e for e in events if e["kind"] == "denied")
    assert denial["method"] == "write" and denial["path"] == "/secret/b" and denial["ns"] == "default"
    assert "/rules/secret/.write" in denial["rule"] and denial["trace"]
    ok = next(e for e in events if e["kind"] == "request" and e["path"] == "/open/a.json")
    assert ok["method"] == "PUT" and ok["status"] == 200 and ok["transport"] == "rest"
    refused = next(e for e in events if e["kind"] == "request" and e["path"] == "/secret/b.json")
    assert refused["status"] == 401


def test_the_changes_stream_names_changed_paths_with_small_values(server: RunningServer) -> None:
    big = {f"k{i}": i for i in range(3000)}

    def workload() -> None:
        httpx.put(f"{server.url}/a/b.json?ns=live", json={"c": 1})
        httpx.put(f"{server.url}/a/b.json?ns=live", json={"c": 2})
        httpx.put(f"{server.url}/big.json?ns=live", json=big)
        time.sleep(0.3)  # a window of its own (the stream sends at most every 0.1 s)
        httpx.patch(f"{server.url}/many.json?ns=live", json={f"p{i}": i for i in range(300)})

    def changes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for e in events for c in e["changes"]]

    events = sse_events(f"{server.url}/.console/api/changes?ns=live", {},
                        lambda ev: any(c["path"] == "/" for c in changes(ev)), workload)
    seen = changes(events)
    assert {"path": "/a/b", "value": {"c": 2}} in seen  # the latest value of a path
    assert {"path": "/a/b", "value": {"c": 1}} not in seen or len(events) > 1  # coalesced within a window
    assert {"path": "/big", "large": True} in seen  # too big to send: read it if shown
    assert seen[-1] == {"path": "/", "large": True}  # 300 paths at once: reload what is shown
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and seqs[-1] == 4


def test_namespaces_are_listed_and_created(server: RunningServer) -> None:
    api = f"{server.url}/.console/api"
    assert httpx.post(f"{api}/namespaces", json={"name": "shop"}).status_code == 201
    assert "shop" in httpx.get(f"{api}/info").json()["namespaces"]
    bad = httpx.post(f"{api}/namespaces", json={"name": "no/such"})
    assert bad.status_code == 404 and "Invalid namespace" in bad.json()["error"]
    schema = httpx.get(f"{api}/schema/openapi.json").json()
    assert "/.console/api/simulate" in schema["paths"]


def test_json_logs_carry_access_and_denial_lines(server_factory: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules), "--log-format", "json", "--access-log", "--log-denials")
    httpx.put(f"{server.url}/open/a.json", json=1)
    httpx.put(f"{server.url}/secret/b.json", json="v")
    server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "rtdb.access"]
    assert [(a["method"], a["path"], a["status"]) for a in access] == [("PUT", "/open/a.json", 200),
                                                                      ("PUT", "/secret/b.json", 401)]
    denied = [line for line in lines if line["logger"] == "rtdb.denied"]
    assert len(denied) == 1 and "/rules/secret/.write" in denied[0]["rule"] and denied[0]["path"] == "/secret/b"


def test_healthz_says_when_the_rules_file_stopped_reloading(server_factory: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)
    server = server_factory("--rules", str(rules))
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    rules.write_text('{"rules": {".read": "auth !=="}}')
    wait_for(lambda: httpx.get(f"{server.url}/healthz").json().get("rules"), "the broken rules file to be reported")
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert "not reloaded" in health.json()["rules"]["error"] and "1:" in health.json()["rules"]["error"]
    rules.write_text(RULES)
    wait_for(lambda: httpx.get(f"{server.url}/healthz").json()["status"] == "ok", "the fixed file to be reloaded")


def wait_for(predicate: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_with_two_workers_one_scrape_sums_both(server_factory: Any) -> None:
    server = server_factory("--emulator", "--workers", "2")
    pids = set()
    for i in range(30):  # a new connection each time: the kernel spreads them over the workers
        with httpx.Client() as client:
            assert client.put(f"{server.url}/w/{i}.json", json=i).status_code == 200
            pids.add(client.get(f"{server.url}/healthz").json()["pid"])
    assert len(pids) == 2, "both workers answered"
    for _ in range(4):  # whichever worker answers the scrape
        with httpx.Client() as client:
            text = client.get(f"{server.url}/metrics").text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("rtdb_requests_total", (("outcome", "ok"), ("transport", "rest")))] == 30
        assert samples[("rtdb_writes_total", (("outcome", "ok"),))] == 30


def test_metrics_count_the_events_queued_to_sse_streams(server_factory: Any) -> None:
    server = server_factory("--emulator", "--metrics-public")
    events = sse_events(f"{server.url}/feed.json", {"Accept": "text/event-stream"},
                        until=lambda seen: len(seen) >= 3,
                        trigger=lambda: [httpx.put(f"{server.url}/feed/k{i}.json", json=i) for i in range(2)])
    assert events[0] == {"path": "/", "data": None}
    text = httpx.get(f"{server.url}/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("rtdb_realtime_messages_queued_total", (("transport", "sse"),))] >= 3  # the first put, two changes
    assert samples[("rtdb_realtime_payloads_encoded_total", (("transport", "sse"),))] >= 2
