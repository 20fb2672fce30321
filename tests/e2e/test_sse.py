"""REST streaming against a real server: httpx reading the event stream, and the
unmodified firebase-admin listen()."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator

import firebase_admin
import httpx
import pytest
from conftest import RunningServer
from firebase_admin import db


class EventReader:
    """Reads SSE messages from a streaming response in a thread; ``next()`` waits with a timeout."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.messages: queue.Queue[tuple[str, str]] = queue.Queue()
        self.client = httpx.Client(timeout=30)
        self.response = self.client.send(
            self.client.build_request("GET", url, headers={"Accept": "text/event-stream", **(headers or {})}),
            stream=True,
        )
        self.raw_lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind, data = None, None
        try:
            for line in self.response.iter_lines():
                self.raw_lines.append(line)
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and kind is not None:
                    self.messages.put((kind, data or ""))
                    kind, data = None, None
        except httpx.HTTPError:
            pass
        self.messages.put(("<closed>", ""))

    def next(self, timeout: float = 10) -> tuple[str, object]:
        kind, data = self.messages.get(timeout=timeout)
        if kind in ("put", "patch"):
            return kind, json.loads(data)
        return kind, data

    def close(self) -> None:
        self.response.close()
        self.client.close()


@pytest.fixture
def stream(server: RunningServer) -> Iterator[callable]:  # type: ignore[valid-type]
    readers: list[EventReader] = []

    def open_(path: str, **headers: str) -> EventReader:
        reader = EventReader(server.url + path, headers)
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        reader.close()


def test_stream_starts_with_the_current_value_then_puts_and_patches(server: RunningServer, stream) -> None:  # type: ignore[no-untyped-def]
    httpx.put(server.url + "/room.json", json={"a": 1})
    events = stream("/room.json")
    assert events.response.headers["content-type"].startswith("text/event-stream")
    assert events.next() == ("put", {"path": "/", "data": {"a": 1}})
    httpx.put(server.url + "/room/b.json", json={"x": [1, 2]})
    assert events.next() == ("put", {"path": "/b", "data": {"x": [1, 2]}})
    httpx.patch(server.url + "/room.json", json={"c": 3, "d": None})
    assert events.next() == ("patch", {"path": "/", "data": {"c": 3}}), "d did not exist: no change to send"
    httpx.patch(server.url + "/room.json", json={"b/x": 5})
    assert events.next() == ("put", {"path": "/b/x", "data": 5})
    httpx.delete(server.url + "/room.json")
    assert events.next() == ("put", {"path": "/", "data": None})
    assert all(not line.endswith("\r") for line in events.raw_lines)


def test_writes_elsewhere_and_unchanged_writes_send_nothing(server: RunningServer, stream) -> None:  # type: ignore[no-untyped-def]
    httpx.put(server.url + "/a.json", json={"v": 1})
    events = stream("/a.json")
    assert events.next()[0] == "put"
    httpx.put(server.url + "/b.json", json=1)
    httpx.put(server.url + "/a/v.json", json=1)
    httpx.put(server.url + "/a/v.json", json=2)
    assert events.next() == ("put", {"path": "/v", "data": 2})


def test_a_write_above_the_stream_sends_the_new_value_of_its_location(server: RunningServer, stream) -> None:  # type: ignore[no-untyped-def]
    events = stream("/deep/x.json")
    assert events.next() == ("put", {"path": "/", "data": None})
    httpx.put(server.url + "/deep.json", json={"x": {"y": 1}, "z": 2})
    assert events.next() == ("put", {"path": "/", "data": {"y": 1}})


def test_query_stream_follows_its_window(server: RunningServer, stream) -> None:  # type: ignore[no-untyped-def]
    httpx.put(server.url + "/scores.json", json={"a": {"s": 1}, "b": {"s": 5}, "c": {"s": 9}})
    events = stream('/scores.json?orderBy="s"&limitToLast=2')
    assert events.next() == ("put", {"path": "/", "data": {"b": {"s": 5}, "c": {"s": 9}}})
    httpx.put(server.url + "/scores/d.json", json={"s": 7})
    kinds = [events.next(), events.next()]
    assert ("put", {"path": "/d", "data": {"s": 7}}) in kinds
    assert ("put", {"path": "/b", "data": None}) in kinds


def test_keep_alive_is_an_event_with_null_data(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory("--emulator", "--sse-keepalive-s", "1")
    events = EventReader(server.url + "/k.json")
    try:
        assert events.next()[0] == "put"
        assert events.next(timeout=5) == ("keep-alive", "null")
        assert not any(line.startswith(":") for line in events.raw_lines)
    finally:
        events.close()


def test_denied_stream_answers_json_401_and_opens_nothing(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()  # production mode, no rules: anonymous reads are refused
    response = httpx.get(server.url + "/x.json", headers={"Accept": "text/event-stream"})
    assert response.status_code == 401
    assert response.json() == {"error": "Permission denied"}


# firebase-admin's ListenerRegistration.close() makes its reader thread raise while it
# tears down the response (spec 6.5: "a harmless traceback can appear in the thread").
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_firebase_admin_listen_receives_put_and_patch(server_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a short keep-alive lets firebase-admin's reader thread notice close() quickly
    server = server_factory("--emulator", "--sse-keepalive-s", "1")
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", server.host)
    name = f"sse-{uuid.uuid4().hex[:8]}"
    app = firebase_admin.initialize_app(options={"databaseURL": f"https://{name}.firebaseio.com"}, name=name)
    received: queue.Queue[db.Event] = queue.Queue()
    try:
        ref = db.reference("/chat", app=app)
        ref.set({"m1": "hi"})
        registration = ref.listen(received.put)
        first = received.get(timeout=10)
        assert (first.event_type, first.path, first.data) == ("put", "/", {"m1": "hi"})
        ref.child("m2").set("yo")
        second = received.get(timeout=10)
        assert (second.event_type, second.path, second.data) == ("put", "/m2", "yo")
        ref.update({"m3": "hey", "m4": "ho"})
        third = received.get(timeout=10)
        assert (third.event_type, third.path, third.data) == ("patch", "/", {"m3": "hey", "m4": "ho"})
        registration.close()
    finally:
        firebase_admin.delete_app(app)


def test_browsers_may_call_the_rest_api_from_any_origin(server: RunningServer) -> None:
    preflight = httpx.options(server.url + "/cors.json", headers={
        "Origin": "http://app.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type,authorization"
    put = httpx.put(server.url + "/cors.json", json=1, headers={"Origin": "http://app.example"})
    assert put.headers["access-control-allow-origin"] == "*"
    with httpx.stream("GET", server.url + "/cors.json", headers={"Accept": "text/event-stream"}) as stream:
        assert stream.headers["access-control-allow-origin"] == "*"
