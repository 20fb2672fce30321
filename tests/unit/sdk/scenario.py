"""Runs the sync-tree scenarios of tests/cases/sdk/*.json against a bare SyncTree (no event loop).

A scenario is a list of steps; each step is one transition and lists exactly the
events (and, optionally, the wire listens) it must produce:

* ``{"op": "listen", "as": "L", "path": "a", "query": {wire query}, "types": ["value", ...]}``
* ``{"op": "unlisten", "as": "L"}``
* ``{"op": "set", "id": 1, "path": "a/b", "data": ...}``
  / ``{"op": "update", "id": 2, "path": "a", "data": {"x/y": 1}}``
* ``{"op": "ack", "id": 1}`` / ``{"op": "revert", "id": 1}``
* ``{"op": "server_data", "path": "a", "data": ..., "tag": "L"}`` / ``{"op": "server_merge", ...}`` (tag optional)
* ``{"op": "complete", "path": "a", "query": {...}}`` — the listen's ``ok``
* ``{"op": "failed", "path": "a", "query": {...}, "status": "permission_denied"}``

Expected events: ``{"L": "L", "type": "child_added", "key": "b", "prev": null, "data": ...}``
(``value`` events have no key). ``data`` is compared in node form (priorities included).
``sends`` (optional) lists wire listens as ``"q /a"`` / ``"n /a {query}"``.
"""

from __future__ import annotations

import json
from pathlib import Path as FsPath
from typing import Any

from msgspec import convert

from rtdb.core import path as paths
from rtdb.core.value import normalize, same
from rtdb.protocol.messages import WireQuery
from rtdb.protocol.query import DEFAULT_QUERY_ID, query_id, to_spec
from rtdb_sdk.events import EVENT_TYPES, Event, Registration
from rtdb_sdk.synctree import Effects, ListenRequest, SyncTree

CASES = FsPath(__file__).resolve().parents[2] / "cases" / "sdk"


def load_scenarios() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for file in sorted(CASES.glob("*.json")):
        for scenario in json.loads(file.read_text(encoding="utf-8"))["scenarios"]:
            out.append((f"{file.stem}: {scenario['name']}", scenario))
    return out


def _query(raw: dict[str, Any] | None) -> tuple[Any, str]:
    wire = convert(raw or {}, WireQuery)
    spec = to_spec(wire)
    return spec, query_id(wire)


def _p(raw: str) -> paths.Path:
    return tuple(s for s in raw.split("/") if s)


def _describe(request: ListenRequest, verb: str) -> str:
    text = f"{verb} /{'/'.join(request.path)}"
    return text if request.query_id == DEFAULT_QUERY_ID else f"{text} {request.query_id}"


class Runner:
    def __init__(self) -> None:
        self.tree = SyncTree()
        self.listeners: dict[str, tuple[paths.Path, Any, str, list[Registration]]] = {}
        self.names: dict[int, str] = {}
        self.tags: dict[tuple[paths.Path, str], int] = {}

    def run(self, scenario: dict[str, Any]) -> None:
        for i, step in enumerate(scenario["steps"]):
            effects = self.step(step)
            where = f"step {i} ({step['op']})"
            got = [self.render(e) for e in effects.events]
            want = step.get("events", [])
            assert _same_events(got, want), f"{where}: events\n got: {json.dumps(got)}\nwant: {json.dumps(want)}"
            if "sends" in step:
                sends = [_describe(r, "q") for r in effects.start] + [_describe(r, "n") for r in effects.stop]
                assert sends == step["sends"], f"{where}: sends {sends} != {step['sends']}"
            for r in effects.start:
                if r.tag is not None:
                    self.tags[(r.path, r.query_id)] = r.tag

    def step(self, step: dict[str, Any]) -> Effects:
        op = step["op"]
        tree = self.tree
        if op == "listen":
            path = _p(step["path"])
            spec, qid = _query(step.get("query"))
            regs = [Registration(kind, None) for kind in step.get("types", ["value"])]
            for r in regs:
                assert r.kind in EVENT_TYPES
                self.names[r.id] = step["as"]
            self.listeners[step["as"]] = (path, spec, qid, regs)
            effects = Effects()
            for r in regs:
                more = tree.add_registration(path, spec, qid, r)
                effects.events += more.events
                effects.start += more.start
                effects.stop += more.stop
            return effects
        if op == "unlisten":
            path, _, qid, regs = self.listeners.pop(step["as"])
            effects = Effects()
            for r in regs:
                more = tree.remove_registration(path, qid, r)
                effects.events += more.events
                effects.start += more.start
                effects.stop += more.stop
            return effects
        if op == "set":
            path = _p(step["path"])
            return Effects(tree.apply_user_set(step["id"], path, normalize(step["data"], path)))
        if op == "update":
            base = _p(step["path"])
            children = {_p(k): normalize(v, base + _p(k)) for k, v in step["data"].items()}
            return Effects(tree.apply_user_merge(step["id"], base, children))
        if op in ("ack", "revert"):
            return Effects(tree.apply_ack(step["id"], revert=op == "revert"))
        if op in ("server_data", "server_merge"):
            path = _p(step["path"])
            tag = None
            if "tag" in step:
                known = self.listeners.get(step["tag"])
                tag = self.tags.get((known[0], known[2]), 10_000) if known else 10_000
            if op == "server_data":
                return Effects(tree.apply_server_overwrite(path, normalize(step["data"], path), tag))
            children = {_p(k): normalize(v, path + _p(k)) for k, v in step["data"].items()}
            return Effects(tree.apply_server_merge(path, children, tag))
        if op == "complete":
            _, qid = _query(step.get("query"))
            return Effects(tree.apply_listen_complete(_p(step["path"]), qid))
        if op == "failed":
            _, qid = _query(step.get("query"))
            return tree.apply_listen_failed(_p(step["path"]), qid, RuntimeError(step.get("status", "failed")))
        raise AssertionError(f"unknown op {op}")

    def render(self, event: Event) -> dict[str, Any]:
        out: dict[str, Any] = {"L": self.names[event.registration.id], "type": event.type}
        if event.type == "cancel":
            return out
        if event.type != "value":
            out["key"] = event.key
            if event.type != "child_removed":
                out["prev"] = event.prev
        out["data"] = event.node
        return out


def _same_events(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if set(g) != set(w):
            return False
        for k in g:
            if k == "data":
                if not same(g[k], normalize(w[k])):
                    return False
            elif g[k] != w[k]:
                return False
    return True
