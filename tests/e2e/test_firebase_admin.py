"""The unmodified `firebase_admin` SDK against the production app in emulator mode, served
on a loopback port from this test process (conftest's ``InProcessServer``; a test that needs
other flags starts a real ``rtdb serve``) — ``FIREBASE_DATABASE_EMULATOR_HOST``: every
request carries ``Bearer owner`` and ``?ns=``. Real processes serve firebase-admin in
test_sse.py and behind nginx in test_cluster_chaos.py."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import firebase_admin
import httpx
import pytest
from firebase_admin import db, exceptions

pytestmark = pytest.mark.e2e

DINOSAURS = {
    "bruhathkayosaurus": {"height": 25, "length": 44, "dims": {"h": "c"}},
    "lambeosaurus": {"height": 2.1, "length": 12.5, "dims": {"h": "a b"}},
    "linhenykus": {"height": 0.6, "length": 1, "dims": {"h": "b"}},
    "pterodactyl": {"height": 0.6, "length": 1.5},
    "stegosaurus": {"height": 4, "length": 9},
    "triceratops": {"height": 3, "length": 8, "dims": {"h": "a"}},
}

SCORES = {"alice": 12, "bob": 7, "carol": "n/a", "dave": True, "erin": 7, "frank": 30, "gina": None}


class Admin:
    """One firebase_admin app bound to one namespace of the server, plus a raw
    HTTP view of the same namespace to check what the SDK did."""

    def __init__(self, server: Any, app: firebase_admin.App, ns: str) -> None:
        self.server = server
        self.app = app
        self.ns = ns

    def ref(self, path: str = "/") -> db.Reference:
        return db.reference(path, app=self.app)

    def raw(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.server.url}{path}.json", params={"ns": self.ns, **params})
        assert response.status_code == 200, response.text
        return response.json()

    def raw_put(self, path: str, body: bytes) -> None:
        response = httpx.put(f"{self.server.url}{path}.json", params={"ns": self.ns}, content=body)
        assert response.status_code == 200, response.text


@pytest.fixture
def server(inproc_server: Any) -> Any:
    return inproc_server


@pytest.fixture
def make_admin(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Admin]]:
    """Apps named and namespaced uniquely per call; no credentials (emulator mode needs none)."""
    apps: list[firebase_admin.App] = []

    def make(target: Any = None, **options: Any) -> Admin:
        target = target or server
        monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", target.host)
        ns = "fa-" + uuid.uuid4().hex[:12]
        app = firebase_admin.initialize_app(
            options={"databaseURL": f"https://{ns}.firebaseio.com", **options}, name=f"test-{uuid.uuid4().hex}"
        )
        apps.append(app)
        db.reference("/", app=app)  # the app's database client reads the variable now
        return Admin(target, app, ns)

    yield make
    for app in apps:
        firebase_admin.delete_app(app)


@pytest.fixture
def admin(make_admin: Callable[..., Admin]) -> Admin:
    return make_admin()


# -- plain reads and writes ---------------------------------------------------------


def test_set_then_get_round_trips_every_json_type(admin: Admin) -> None:
    value = {"s": "ünïcødé ✓", "i": 42, "f": 2.5, "t": True, "b": False, "arr": [1, "two", {"three": 3}],
             "nested": {"deeper": {"deepest": -1}}}
    admin.ref("/things").set(value)
    assert admin.ref("/things").get() == value
    assert admin.ref("/things/nested/deeper/deepest").get() == -1
    assert admin.raw("/things") == value


def test_get_of_a_missing_location_is_none(admin: Admin) -> None:
    assert admin.ref("/nothing/here").get() is None


def test_data_lands_in_the_namespace_of_the_database_url(admin: Admin, make_admin: Callable[..., Admin]) -> None:
    other = make_admin()
    admin.ref("/k").set("mine")
    assert other.ref("/k").get() is None
    assert admin.raw("/k") == "mine"


def test_update_with_multi_segment_keys_changes_only_the_named_paths(admin: Admin) -> None:
    admin.ref("/dinosaurs").set({"a": {"height": 1, "length": 2}, "b": {"height": 3}})
    admin.ref("/dinosaurs").update({"a/height": 10, "d": {"height": 1}, "b/weight/kg": 5})
    assert admin.ref("/dinosaurs").get() == {
        "a": {"height": 10, "length": 2},
        "b": {"height": 3, "weight": {"kg": 5}},
        "d": {"height": 1},
    }


def test_update_with_none_value_deletes_that_path(admin: Admin) -> None:
    admin.ref("/u").set({"a": 1, "b": {"c": 2}})
    admin.ref("/u").update({"a": None, "b/c": None, "x": "y"})
    assert admin.ref("/u").get() == {"x": "y"}


def test_update_with_overlapping_paths_is_an_invalid_argument_error(admin: Admin) -> None:
    admin.ref("/u").set({"a": {"b": 1}})
    with pytest.raises(exceptions.InvalidArgumentError) as caught:
        admin.ref("/u").update({"a": 1, "a/b": 2})
    assert "ancestor" in str(caught.value)
    assert admin.ref("/u").get() == {"a": {"b": 1}}


def test_push_creates_a_chronological_child_with_the_value(admin: Admin) -> None:
    refs = [admin.ref("/list").push({"n": i}) for i in range(10)]
    keys = [r.key for r in refs]
    assert all(isinstance(k, str) and len(k) == 20 for k in keys)
    assert sorted(keys) == keys
    assert admin.ref("/list").get() == {k: {"n": i} for i, k in enumerate(keys)}
    assert refs[3].get() == {"n": 3}


def test_push_without_a_value_stores_the_empty_string(admin: Admin) -> None:
    child = admin.ref("/list").push()
    assert child.get() == ""
    assert admin.raw(f"/list/{child.key}") == ""
    child.set("later")
    assert admin.ref("/list").get() == {child.key: "later"}


def test_delete_removes_the_node_and_prunes_empty_parents(admin: Admin) -> None:
    admin.ref("/").set({"keep": 1, "a": {"b": {"c": 1}}})
    admin.ref("/a/b/c").delete()
    assert admin.ref("/a").get() is None
    assert admin.ref("/").get() == {"keep": 1}
    admin.ref("/never/existed").delete()


def test_get_shallow_returns_child_keys_only(admin: Admin) -> None:
    admin.ref("/d").set(DINOSAURS)
    assert admin.ref("/d").get(shallow=True) == {k: True for k in DINOSAURS}
    assert admin.ref("/d/stegosaurus/height").get(shallow=True) == 4


# -- ETags ----------------------------------------------------------------------------


def test_get_with_etag_returns_the_value_and_the_servers_etag(admin: Admin) -> None:
    admin.ref("/e").set({"a": 1})
    value, etag = admin.ref("/e").get(etag=True)
    assert value == {"a": 1}
    raw = httpx.get(f"{admin.server.url}/e.json", params={"ns": admin.ns}, headers={"X-Firebase-ETag": "true"})
    assert etag == raw.headers["ETag"]
    assert admin.ref("/missing").get(etag=True) == (None, "null_etag")


def test_get_if_changed_is_false_while_the_data_is_unchanged(admin: Admin) -> None:
    ref = admin.ref("/e")
    ref.set({"a": 1})
    _, etag = ref.get(etag=True)
    assert ref.get_if_changed(etag) == (False, None, None)
    assert admin.ref("/missing").get_if_changed("null_etag") == (False, None, None)


def test_get_if_changed_after_a_write_returns_the_new_data_and_its_etag(admin: Admin) -> None:
    ref = admin.ref("/e")
    ref.set({"a": 1})
    _, etag = ref.get(etag=True)
    ref.update({"b": 2})
    changed, value, new_etag = ref.get_if_changed(etag)
    assert changed is True
    assert value == {"a": 1, "b": 2}
    assert new_etag == ref.get(etag=True)[1] != etag
    assert ref.get_if_changed(new_etag) == (False, None, None)


def test_set_if_unchanged_writes_when_the_etag_matches(admin: Admin) -> None:
    ref = admin.ref("/e")
    ref.set("old")
    _, etag = ref.get(etag=True)
    ok, value, new_etag = ref.set_if_unchanged(etag, {"new": True})
    assert ok is True
    assert value == {"new": True}
    assert new_etag == ref.get(etag=True)[1]
    assert ref.get() == {"new": True}


def test_set_if_unchanged_fails_with_current_value_and_etag_after_a_concurrent_write(admin: Admin) -> None:
    ref = admin.ref("/e")
    ref.set("old")
    _, etag = ref.get(etag=True)
    admin.raw_put("/e", b'"changed by someone else"')
    ok, value, current_etag = ref.set_if_unchanged(etag, "mine")
    assert ok is False
    assert value == "changed by someone else"
    assert current_etag == ref.get(etag=True)[1]
    assert ref.get() == "changed by someone else"


def test_set_if_unchanged_with_null_etag_creates_only_once(admin: Admin) -> None:
    ref = admin.ref("/once")
    assert ref.set_if_unchanged("null_etag", 1)[0] is True
    assert ref.set_if_unchanged("null_etag", 2) == (False, 1, ref.get(etag=True)[1])


# -- transactions -------------------------------------------------------------------


def test_transaction_applies_the_function_to_the_current_value(admin: Admin) -> None:
    ref = admin.ref("/counter")
    assert ref.transaction(lambda current: (current or 0) + 5) == 5
    assert ref.transaction(lambda current: current * 2) == 10
    assert ref.get() == 10


def test_concurrent_transactions_from_several_threads_lose_no_increment(admin: Admin) -> None:
    ref = admin.ref("/counter")
    threads, increments = 4, 10
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work() -> None:
        try:
            start.wait(timeout=30)
            for _ in range(increments):
                ref.transaction(lambda current: (current or 0) + 1)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers)
    assert errors == []
    assert ref.get() == threads * increments


def test_transaction_on_a_subtree_sees_and_keeps_its_structure(admin: Admin) -> None:
    ref = admin.ref("/account")
    ref.set({"balance": 100, "history": ["open"]})

    def withdraw(current: dict[str, Any]) -> dict[str, Any]:
        return {"balance": current["balance"] - 30, "history": [*current["history"], "withdraw 30"]}

    assert ref.transaction(withdraw) == {"balance": 70, "history": ["open", "withdraw 30"]}
    assert ref.get() == {"balance": 70, "history": ["open", "withdraw 30"]}


# -- queries ------------------------------------------------------------------------


@pytest.fixture
def dinos(admin: Admin) -> db.Reference:
    ref = admin.ref("/dinosaurs")
    ref.set(DINOSAURS)
    return ref


def keys(result: Any) -> list[str]:
    return list(result.keys()) if result else []


def test_order_by_child_with_range(dinos: db.Reference) -> None:
    result = dinos.order_by_child("height").start_at(2).end_at(10).get()
    assert keys(result) == ["lambeosaurus", "triceratops", "stegosaurus"]
    assert result["stegosaurus"] == DINOSAURS["stegosaurus"]


def test_order_by_child_limits_take_the_ends_of_the_order(dinos: db.Reference) -> None:
    # ties on 0.6 are broken by key
    assert keys(dinos.order_by_child("height").limit_to_first(2).get()) == ["linhenykus", "pterodactyl"]
    assert keys(dinos.order_by_child("height").limit_to_first(3).get()) == [
        "linhenykus", "pterodactyl", "lambeosaurus"]
    assert keys(dinos.order_by_child("height").limit_to_last(2).get()) == ["stegosaurus", "bruhathkayosaurus"]
    assert keys(dinos.order_by_child("height").start_at(1).limit_to_first(2).get()) == [
        "lambeosaurus", "triceratops"]
    assert keys(dinos.order_by_child("height").end_at(3).limit_to_last(2).get()) == ["lambeosaurus", "triceratops"]
    assert keys(dinos.order_by_child("height").limit_to_first(0).get()) == []


def test_order_by_child_equal_to(dinos: db.Reference) -> None:
    assert keys(dinos.order_by_child("height").equal_to(0.6).get()) == ["linhenykus", "pterodactyl"]
    assert keys(dinos.order_by_child("height").equal_to(4).get()) == ["stegosaurus"]
    assert keys(dinos.order_by_child("height").equal_to(5).get()) == []
    assert keys(dinos.order_by_child("length").equal_to(1).get()) == ["linhenykus"]


def test_order_by_nested_child_with_string_bounds(dinos: db.Reference) -> None:
    # children without dims/h sort first (null), then strings
    assert keys(dinos.order_by_child("dims/h").start_at("a b").get()) == [
        "lambeosaurus", "linhenykus", "bruhathkayosaurus"]
    assert keys(dinos.order_by_child("dims/h").end_at("a").get()) == ["pterodactyl", "stegosaurus", "triceratops"]
    assert keys(dinos.order_by_child("dims/h").limit_to_first(2).get()) == ["pterodactyl", "stegosaurus"]
    assert keys(dinos.order_by_child("dims/h").equal_to("a b").get()) == ["lambeosaurus"]


def test_order_by_key_with_range_and_limits(dinos: db.Reference) -> None:
    assert keys(dinos.order_by_key().start_at("l").end_at("s").get()) == ["lambeosaurus", "linhenykus", "pterodactyl"]
    assert keys(dinos.order_by_key().limit_to_last(2).get()) == ["stegosaurus", "triceratops"]
    assert keys(dinos.order_by_key().limit_to_first(1).get()) == ["bruhathkayosaurus"]
    assert keys(dinos.order_by_key().equal_to("stegosaurus").get()) == ["stegosaurus"]
    assert keys(dinos.order_by_key().start_at("zzz").get()) == []


def test_order_by_key_limits_use_the_servers_integer_key_order(admin: Admin) -> None:
    ref = admin.ref("/numbered")
    ref.set({"9": "nine", "10": "ten", "100": "hundred", "a": "letter"})
    # the server orders integer keys numerically: 9 < 10 < 100 < "a"
    assert set(keys(ref.order_by_key().limit_to_first(2).get())) == {"9", "10"}
    assert set(keys(ref.order_by_key().limit_to_last(2).get())) == {"100", "a"}


def test_order_by_value_with_range_equal_to_and_limits(admin: Admin) -> None:
    ref = admin.ref("/scores")
    ref.set(SCORES)
    # value order: null < false < true < numbers < strings
    assert keys(ref.order_by_value().get()) == ["dave", "bob", "erin", "alice", "frank", "carol"]
    assert keys(ref.order_by_value().start_at(7).end_at(12).get()) == ["bob", "erin", "alice"]
    assert keys(ref.order_by_value().equal_to(7).get()) == ["bob", "erin"]
    assert keys(ref.order_by_value().limit_to_first(2).get()) == ["dave", "bob"]
    assert keys(ref.order_by_value().limit_to_last(2).get()) == ["frank", "carol"]
    assert keys(ref.order_by_value().start_at(13).get()) == ["frank", "carol"]
    assert keys(ref.order_by_value().end_at(True).get()) == ["dave"]
    assert keys(ref.order_by_value().equal_to("n/a").get()) == ["carol"]


def test_query_on_a_leaf_or_missing_location_is_empty(admin: Admin) -> None:
    admin.ref("/leaf").set(5)
    assert not admin.ref("/leaf").order_by_key().limit_to_first(1).get()
    assert not admin.ref("/missing").order_by_value().limit_to_first(1).get()


# -- app options ----------------------------------------------------------------------


@pytest.mark.parametrize("override", [{"uid": "user1", "admin": True}, None])
def test_auth_variable_override_still_reads_and_writes_with_open_emulator_rules(
    make_admin: Callable[..., Admin], override: dict[str, Any] | None
) -> None:
    admin = make_admin(databaseAuthVariableOverride=override)
    ref = admin.ref("/counter")
    ref.set(1)
    assert ref.get() == 1
    ref.update({"more": {"x": True}})
    assert ref.transaction(lambda current: {"more": current["more"], "n": 2}) == {"more": {"x": True}, "n": 2}
    assert admin.raw("/counter") == {"more": {"x": True}, "n": 2}


# -- streaming --------------------------------------------------------------------------


def server_streams(server: Any) -> bool:
    with httpx.stream("GET", f"{server.url}/.json", headers={"Accept": "text/event-stream"}, timeout=10) as r:
        return r.status_code == 200 and r.headers.get("content-type", "").startswith("text/event-stream")


# ListenerRegistration.close() makes firebase-admin's reader thread raise while it tears
# down the response (spec 6.5: "a harmless traceback can appear in the thread").
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_listen_receives_the_initial_put_and_later_changes(
    make_admin: Callable[..., Admin], server_factory: Callable[..., Any]
) -> None:
    # a short keep-alive lets the listener thread notice close() quickly
    streaming = server_factory("--emulator", "--sse-keepalive-s", "1")
    if not server_streams(streaming):
        pytest.skip("the server does not serve REST streaming (SSE) yet")
    admin = make_admin(streaming)
    ref = admin.ref("/live")
    ref.set({"a": 1})
    events: queue.Queue[db.Event] = queue.Queue()
    registration = ref.listen(events.put)
    try:
        first = events.get(timeout=20)
        assert (first.event_type, first.path, first.data) == ("put", "/", {"a": 1})
        ref.child("b").set(2)
        second = events.get(timeout=20)
        assert (second.event_type, second.path, second.data) == ("put", "/b", 2)
        ref.update({"c": 3, "d": {"e": 4}})
        third = events.get(timeout=20)
        assert (third.event_type, third.path, third.data) == ("patch", "/", {"c": 3, "d": {"e": 4}})
        ref.delete()
        fourth = events.get(timeout=20)
        assert (fourth.event_type, fourth.path, fourth.data) == ("put", "/", None)
    finally:
        registration.close()
    assert events.empty()
