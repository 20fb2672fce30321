"""Firebase's long-polling transport (/.lp) and its upgrade to /.ws at protocol level
(shared/specs/long-polling.md §3, §4): against the production app served from this test
process, and the two-worker variants against a real `rtdb serve --workers 2`."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from conftest import InProcessServer, Loopback
from lp_client import SEGMENT, LPClient, encode, parse_answer, split
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

ALNUM = re.compile(r"^[A-Za-z0-9]+$")


@pytest.fixture
def server(inproc_server: InProcessServer) -> InProcessServer:
    """The production app served from this test process (conftest's ``InProcessServer``)."""
    return inproc_server


@pytest.fixture(params=["1", "2"], ids=["workers1", "workers2"])
def any_server(request: pytest.FixtureRequest, server_factory: Any) -> Loopback:
    """One process, or a real `rtdb serve --workers 2` (a session's requests may reach either
    worker)."""
    if request.param == "1":
        return request.getfixturevalue("inproc_server")  # type: ignore[no-any-return]
    return server_factory("--emulator", "--workers", request.param)  # type: ignore[no-any-return]


@contextmanager
def lp(server: Loopback, ns: str = "lp", **kw: Any) -> Iterator[LPClient]:
    c = LPClient(server.url, ns, **kw)
    c.start()
    c.run()
    try:
        yield c
    finally:
        c.close()


@contextmanager
def raw(server: Loopback, ns: str = "lp") -> Iterator[tuple[LPClient, ThreadPoolExecutor]]:
    """A started session with no poll loop: the test sends every request itself."""
    c = LPClient(server.url, ns)
    c.start()
    pool = ThreadPoolExecutor(8)
    try:
        yield c, pool
    finally:
        c.close()
        pool.shutdown(wait=False, cancel_futures=True)


def fire(c: LPClient, pool: ThreadPoolExecutor, path: str) -> Future[httpx.Response]:
    return pool.submit(c.http.get, path)


def rest(server: Loopback, path: str, ns: str = "lp") -> Any:
    r = httpx.get(f"{server.url}/{path}.json?ns={ns}", headers={"Authorization": "Bearer owner"}, timeout=10)
    r.raise_for_status()
    return r.json()


def put_msg(r: int, path: str, value: Any) -> dict[str, Any]:
    return {"t": "d", "d": {"r": r, "a": "p", "b": {"p": path, "d": value}}}


def segments(msg: Any, first: int) -> list[tuple[int, int, str]]:
    parts = split(encode(msg))
    return [(first + i, len(parts), d) for i, d in enumerate(parts)]


def tail_of(segs: list[tuple[int, int, str]]) -> str:
    return "".join(f"&seg{i}={s}&ts{i}={t}&d{i}={d}" for i, (s, t, d) in enumerate(segs))


def is_closed(resp: httpx.Response) -> bool:
    return any(c[0] == "close" for c in parse_answer(resp.text).commands)


# -- happy path


def test_start_answer_is_the_wrappers_then_start_then_the_handshake(server: Loopback) -> None:
    resp = httpx.get(f"{server.url}/.lp?start=t&ser=123&cb=42&v=5&ns=lp", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/javascript")
    assert resp.content.isascii()
    ans = parse_answer(resp.text)
    assert ans.cb == "42"
    assert len(ans.commands) == 1 and ans.commands[0][0] == "start"
    _, sid, pw = ans.commands[0]
    assert ALNUM.match(str(sid)) and ALNUM.match(str(pw)) and len(str(pw)) >= 10
    assert resp.text.index("pLPCommand('start'") < resp.text.index("pRTLPCB(0,")
    [(pn, [hello])] = ans.packets
    assert pn == 0 and hello["t"] == "c" and hello["d"]["t"] == "h"
    assert hello["d"]["d"]["v"] == "5" and hello["d"]["d"]["s"] and isinstance(hello["d"]["d"]["ts"], int)
    assert hello["d"]["d"]["h"] == server.host


def test_handshake_h_is_the_host_header(server: Loopback) -> None:
    resp = httpx.get(f"{server.url}/.lp?start=t&ser=1&cb=3&v=5&ns=lp",
                     headers={"Host": "example.test:1234"}, timeout=10)
    [(_, [hello])] = parse_answer(resp.text).packets
    assert hello["d"]["d"]["h"] == "example.test:1234"


def test_set_get_listen_and_push_over_long_polling(server: Loopback) -> None:
    with lp(server) as c:
        assert c.request("p", {"p": "/a/b", "d": {"x": 1}}) == {"s": "ok", "d": ""}
        assert rest(server, "a/b") == {"x": 1}
        assert c.request("g", {"p": "/a", "q": {}}) == {"s": "ok", "d": {"b": {"x": 1}}}
        assert c.request("q", {"p": "/a", "h": ""})["s"] == "ok"
        c.wait_for(lambda m: any(x["d"].get("a") == "d" for x in m if x["t"] == "d"))
        assert c.pushes()[0] == {"p": "a", "d": {"b": {"x": 1}}}
        httpx.put(f"{server.url}/a/c.json?ns=lp", json="rest", timeout=10).raise_for_status()
        c.wait_for(lambda m: len([x for x in m if x["t"] == "d" and x["d"].get("a") == "d"]) >= 2)
        assert c.pushes()[1] == {"p": "a/c", "d": "rest"}
        key = "-push1"
        assert c.request("p", {"p": f"/a/{key}", "d": True})["s"] == "ok"
        c.wait_for(lambda m: any(x["t"] == "d" and x["d"].get("b", {}).get("p") == f"a/{key}" for x in m))


def test_a_50kb_write_travels_in_many_segments(server: Loopback) -> None:
    value = "".join(chr(0x41 + i % 26) for i in range(50_000))
    with lp(server) as c:
        assert c.request("p", {"p": "/big", "d": value}, timeout=60)["s"] == "ok"
        with_data = [a for a in c.answers if "seg0=" in str(a.request.url)]
        assert len(with_data) >= 50_000 * 4 // 3 // SEGMENT
        assert all(len(str(a.request.url).split("&seg0=", 1)[1]) <= 1870 + 40 for a in with_data)
    assert rest(server, "big") == value


def test_a_character_straddling_a_segment_boundary_is_decoded(server: Loopback) -> None:
    prefix_len = 0
    for n in range(1300, 1400):   # find a prefix that puts "é" across byte 1380 (= 1840 base64 chars)
        raw = json.dumps(put_msg(1, "/u", "a" * n + "é" + "z"), separators=(",", ":"), ensure_ascii=False)
        at = raw.encode().index("é".encode())
        if at == SEGMENT // 4 * 3 - 1:
            prefix_len = n
            break
    assert prefix_len
    msg = put_msg(1, "/u", "a" * prefix_len + "é" + "z")
    assert len(split(encode(msg))) == 2
    with raw_session(server) as (c, pool):
        resp = fire(c, pool, c.url(tail_of(segments(msg, 0)))).result(30)
        assert resp.status_code == 200
    assert rest(server, "u") == "a" * prefix_len + "é" + "z"


@contextmanager
def raw_session(server: Loopback, ns: str = "lp") -> Iterator[tuple[LPClient, ThreadPoolExecutor]]:
    with raw(server, ns) as pair:
        yield pair


def test_answers_are_ascii_only_javascript(server: Loopback) -> None:
    value = "é\u2028😀\u4e2d"
    httpx.put(f"{server.url}/uni.json?ns=lp", json=value, timeout=10).raise_for_status()
    with lp(server) as c:
        assert c.request("g", {"p": "/uni", "q": {}}) == {"s": "ok", "d": value}
        for a in c.answers:
            assert a.headers["content-type"].startswith("application/javascript"), a.headers
            assert a.content.isascii(), a.content[:200]


def test_dframe_is_html_with_only_the_id_and_pw(server: Loopback) -> None:
    c = LPClient(server.url, "lp")
    c.start()
    try:
        r = c.http.get(f"/.lp?dframe=t&id={c.id}&pw={c.pw}&ns=lp&ac=XSSMARK")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "x-frame-options" not in r.headers
        assert f"/.lp?disconn=t&id={c.id}&pw={c.pw}" in r.text
        assert "XSSMARK" not in r.text and "ns=" not in r.text
        bad = c.http.get(f"/.lp?dframe=t&id={c.id}&pw=wrong&ns=lp")
        assert c.pw not in bad.text and "wrong" not in bad.text
    finally:
        c.close()


# -- ordering


def test_segments_sent_out_of_order_are_reassembled_by_seg(server: Loopback) -> None:
    value = "v" * 4000
    segs = segments(put_msg(1, "/ooo", value), 0)
    assert len(segs) == 3
    with raw(server) as (c, pool):
        f2 = fire(c, pool, c.url(tail_of([segs[2]])))
        f1 = fire(c, pool, c.url(tail_of([segs[1]])))
        f2.result(10)  # the newer request released the older held one
        f0 = fire(c, pool, c.url(tail_of([segs[0]])))
        f1.result(10)
        ans = parse_answer(f0.result(10).text)
        c._take(ans)
        c.wait_for(lambda m: any(x["t"] == "d" and x["d"].get("r") == 1 for x in m), 1)
    assert rest(server, "ooo") == value


def test_a_new_request_releases_the_held_one(server: Loopback) -> None:
    with raw(server) as (c, pool):
        held = fire(c, pool, c.url())
        with pytest.raises(TimeoutError):
            held.result(1.5)   # held, not answered
        newer = fire(c, pool, c.url())
        resp = held.result(5)
        assert resp.status_code == 200 and not is_closed(resp)
        assert not newer.done()


def test_an_older_ser_arriving_while_a_newer_poll_is_held_is_answered_at_once(server: Loopback) -> None:
    with raw(server) as (c, pool):
        c.ser += 10
        newer = fire(c, pool, c.url())
        with pytest.raises(TimeoutError):
            newer.result(1.5)
        c.ser -= 5
        older = fire(c, pool, c.url())
        resp = older.result(5)
        assert resp.status_code == 200 and not is_closed(resp)


# -- hostile input


@pytest.mark.parametrize("cb", ["1;alert(1)", "abc", "", "1%22%5D", "9" * 5000])
def test_a_bad_cb_is_400_and_not_reflected(any_server: Loopback, cb: str) -> None:
    r = httpx.get(f"{any_server.url}/.lp?start=t&ser=1&cb={cb}&v=5&ns=lp", timeout=10)
    assert r.status_code == 400, r.text[:200]
    assert "alert" not in r.text and "pLPCommand" not in r.text and "9" * 100 not in r.text


def test_a_request_of_no_known_kind_is_400(any_server: Loopback) -> None:
    r = httpx.get(f"{any_server.url}/.lp?foo=bar&ns=lp", timeout=10)
    assert r.status_code == 400


@pytest.mark.parametrize("who", ["unknown", "wrong_pw"])
def test_unknown_id_or_wrong_pw_is_closed_and_writes_nothing(any_server: Loopback, who: str) -> None:
    with raw(any_server) as (c, pool):
        sid, pw = ("nosuchid", "x" * 20) if who == "unknown" else (c.id, "WrongPassword123")
        tail = tail_of(segments(put_msg(1, "/hostile", 1), 0))
        r = c.http.get(f"/.lp?id={sid}&pw={pw}&ser=1&ns=lp{tail}")
        assert r.status_code == 200
        ans = parse_answer(r.text)
        assert ans.commands == [["close"]] and ans.packets == []
        # the real session is untouched: its own write at seg 0 still works
        ok = fire(c, pool, c.url(tail_of(segments(put_msg(1, "/mine", 2), 0)))).result(10)
        c._take(parse_answer(ok.text))
        assert c.closed is None
    assert rest(any_server, "hostile") is None
    assert rest(any_server, "mine") == 2


def test_the_pw_of_an_ended_session_is_refused(any_server: Loopback) -> None:
    with raw(any_server) as (c, pool):
        sid, pw = c.id, c.pw
        r = c.http.get(f"/.lp?disconn=t&id={sid}&pw={pw}")
        assert r.status_code == 200
        tail = tail_of(segments(put_msg(1, "/replayed", 1), 0))
        again = c.http.get(f"/.lp?id={sid}&pw={pw}&ser={c.ser + 5}&ns=lp{tail}")
        assert parse_answer(again.text).commands == [["close"]]
    assert rest(any_server, "replayed") is None


@pytest.mark.parametrize("payload", ["!!!notbase64", encode("not a message")[:-1] + "@", encode({"t": "x"})[:4],
                                     base64.urlsafe_b64encode(b"{not json").decode().replace("=", ".")])
def test_invalid_base64_or_json_closes_the_session(any_server: Loopback, payload: str) -> None:
    with raw(any_server) as (c, pool):
        r = fire(c, pool, c.url(f"&seg0=0&ts0=1&d0={payload}")).result(10)
        assert r.status_code == 200 and is_closed(r), r.text
        after = c.http.get(c.url())
        assert parse_answer(after.text).commands == [["close"]]


@pytest.mark.parametrize("tail", ["&seg0=-1&ts0=1&d0=e30.", "&seg0=99999999999999999999&ts0=1&d0=e30.",
                                  "&seg0=abc&ts0=1&d0=e30.", "&seg0=0&ts0=0&d0=e30.", "&seg0=0&ts0=-3&d0=e30.",
                                  "&seg0=0&d0=e30.", "&seg0=0&ts0=1"])
def test_garbage_segment_fields_do_not_write_or_crash(any_server: Loopback, tail: str) -> None:
    with raw(any_server) as (c, pool):
        r = fire(c, pool, c.url(tail)).result(25)
        assert r.status_code in (200, 400), r.status_code
        if r.status_code == 200:
            parse_answer(r.text)
        health = httpx.get(f"{any_server.url}/healthz", timeout=5)
        assert health.status_code == 200
    # a fresh session still works after the garbage
    with lp(any_server) as c2:
        assert c2.request("p", {"p": "/after", "d": 1})["s"] == "ok"


def test_a_missing_segment_holds_the_message_back(any_server: Loopback) -> None:
    segs = segments(put_msg(1, "/gap", "g" * 2000), 0)
    assert len(segs) == 2
    with raw(any_server) as (c, pool):
        first = fire(c, pool, c.url(tail_of([segs[1]])))
        with pytest.raises(TimeoutError):
            first.result(1.5)
        assert rest(any_server, "gap") is None
        # a ts that never completes: a later message after the hole is not processed either
        later = fire(c, pool, c.url(tail_of(segments(put_msg(2, "/after_gap", 1), 2))))
        first.result(5)
        with pytest.raises(TimeoutError):
            later.result(1.5)
        assert rest(any_server, "after_gap") is None


def test_a_poll_with_anothers_id_and_a_wrong_pw_changes_nothing_for_it(any_server: Loopback) -> None:
    with raw(any_server) as (victim, pool):
        held = fire(victim, pool, victim.url())
        with pytest.raises(TimeoutError):
            held.result(1.5)
        r = httpx.get(f"{any_server.url}/.lp?id={victim.id}&pw=nope&ser={victim.ser + 9}&ns=lp", timeout=10)
        assert parse_answer(r.text).commands == [["close"]]
        r = httpx.get(f"{any_server.url}/.lp?disconn=t&id={victim.id}&pw=nope", timeout=10)
        with pytest.raises(TimeoutError):
            held.result(1.5)      # the victim's held poll was not released
        nxt = fire(victim, pool, victim.url(tail_of(segments(put_msg(1, "/victim", 1), 0))))
        assert not is_closed(held.result(5))
        assert not is_closed(nxt.result(10))
    assert rest(any_server, "victim") == 1


# -- session end


def test_disconn_runs_on_disconnect(any_server: Loopback) -> None:
    with lp(any_server) as c:
        assert c.request("o", {"p": "/presence", "d": "gone"})["s"] == "ok"
        assert c.request("p", {"p": "/presence", "d": "here"})["s"] == "ok"
        assert rest(any_server, "presence") == "here"
        r = httpx.get(f"{any_server.url}/.lp?disconn=t&id={c.id}&pw={c.pw}", timeout=10)
        assert r.status_code == 200
        assert poll_rest(any_server, "presence", "gone")


def poll_rest(server: Loopback, path: str, want: Any, timeout: float = 10) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rest(server, path) == want:
            return True
        time.sleep(0.05)
    return False


def test_disconn_with_a_wrong_pw_runs_nothing(server: Loopback) -> None:
    with lp(server) as c:
        assert c.request("o", {"p": "/p2", "d": "gone"})["s"] == "ok"
        httpx.get(f"{server.url}/.lp?disconn=t&id={c.id}&pw=bad", timeout=10)
        assert not poll_rest(server, "p2", "gone", timeout=1.5)


def test_ls_on_a_new_start_ends_the_old_session(server: Loopback) -> None:
    with lp(server) as old:
        assert old.request("o", {"p": "/ls", "d": "gone"})["s"] == "ok"
        sid = old.handshake["s"]
        with lp(server, ls=sid):
            assert poll_rest(server, "ls", "gone")
        old.wait_for(lambda m: old.closed is not None)


def test_a_wrong_ls_ends_nothing(server: Loopback) -> None:
    with lp(server) as old:
        assert old.request("o", {"p": "/ls2", "d": "gone"})["s"] == "ok"
        with lp(server, ls="notasession"):
            assert not poll_rest(server, "ls2", "gone", timeout=1.5)


def test_an_idle_session_is_ended_within_the_idle_timeout(server_factory: Any) -> None:
    server = server_factory("--emulator", "--lp-idle-timeout-s", "2")
    c = LPClient(server.url, "lp")
    c.start()
    try:
        r = c.http.get(c.url(tail_of(segments({"t": "d", "d": {"r": 1, "a": "o", "b": {"p": "/idle", "d": "gone"}}},
                                               0))))
        assert r.status_code == 200
        assert poll_rest(server, "idle", "gone", timeout=15)
        assert parse_answer(c.http.get(c.url()).text).commands == [["close"]]
    finally:
        c.close()


# -- the upgrade


def _ws_url(server: Loopback, sid: str, ns: str = "lp") -> str:
    return f"ws://{server.host}/.ws?v=5&s={sid}&ns={ns}"


def _send(ws: Any, msg: Any) -> None:
    ws.send(json.dumps(msg, separators=(",", ":")))  # as JSON.stringify does


def _recv(ws: Any) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=10))  # type: ignore[no-any-return]


def test_the_upgrade_moves_the_session_to_the_socket_in_order(any_server: Loopback) -> None:
    with lp(any_server) as c, connect(_ws_url(any_server, c.handshake["s"]), open_timeout=5) as ws:
        assert _recv(ws) == {"t": "c", "d": {"t": "a", "d": {}}}
        for _ in range(2):
            _send(ws, {"t": "c", "d": {"t": "p", "d": {}}})
            assert _recv(ws) == {"t": "c", "d": {"t": "o", "d": None}}
        _send(ws, {"t": "c", "d": {"t": "a", "d": {}}})
        # an LP write, then a socket write to the same path: the socket one must land last
        c.queue(put_msg(50, "/order", "lp"))
        _send(ws, put_msg(51, "/order", "ws"))
        c.queue({"t": "c", "d": {"t": "n", "d": {}}})
        c.wait_for(lambda m: c.closed is not None, 15)
        last = c.messages[-1]
        assert last == {"t": "c", "d": {"t": "n", "d": {}}}, c.messages
        assert c.closed is not None and len(c.closed) == 2 and c.closed[1] == c.next_pn - 1
        on_socket = [_recv(ws)]
        while on_socket[-1]["d"].get("r") != 51:
            on_socket.append(_recv(ws))
        # answers come in request order: r=50 over long-polling or first on the socket, then r=51
        answers = [m["d"] for m in c.messages + on_socket if m["t"] == "d" and "r" in m["d"]]
        assert answers == [{"r": 50, "b": {"s": "ok", "d": ""}}, {"r": 51, "b": {"s": "ok", "d": ""}}]
        assert rest(any_server, "order") == "ws"
        _send(ws, {"t": "d", "d": {"r": 52, "a": "g", "b": {"p": "/order", "q": {}}}})
        assert _recv(ws) == {"t": "d", "d": {"r": 52, "b": {"s": "ok", "d": "ws"}}}
        after = httpx.get(f"{any_server.url}/.lp?id={c.id}&pw={c.pw}&ser={c.ser + 3}&ns=lp", timeout=10)
        assert parse_answer(after.text).commands == [["close"]]


def test_a_socket_for_an_unknown_session_gets_a_reset(any_server: Loopback) -> None:
    with connect(_ws_url(any_server, "bogus"), open_timeout=5) as ws:
        first = _recv(ws)
        assert first["t"] == "c" and first["d"]["t"] == "r", first
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
