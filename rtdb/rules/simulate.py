"""Ask a ruleset about one operation on a JSON database held in memory.

Meant for ``rtdb rules simulate`` and for tests: the data is plain JSON (the
export format, with ``.priority``/``.value`` if wanted), the value is what a
client would send (server values are resolved with ``now``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from rtdb.core import path as paths
from rtdb.core.query import QuerySpec, parse_rest
from rtdb.core.servervalue import resolve
from rtdb.core.value import Node, child_at, normalize
from rtdb.rules.ruleset import Decision, Ruleset

Operation = Literal["read", "write", "update"]


class MemoryView:
    """A :class:`~rtdb.rules.snapshot.DataView` over one in-memory node."""

    def __init__(self, node: Node) -> None:
        self.root = node

    def node(self, path: tuple[str, ...]) -> Any:
        return child_at(self.root, path)


def simulate(
    ruleset: Ruleset | str,
    data_json: Any,
    auth: dict[str, Any] | None,
    op: Operation,
    path_str: str,
    value: Any = None,
    *,
    now: int | None = None,
    query: QuerySpec | Mapping[str, str] | None = None,
    explain: bool = True,
) -> Decision:
    """Decide ``op`` at ``path_str`` by ``auth`` against ``data_json``.

    ``value`` is the new value for a write, or the ``{"rel/path": value}`` map
    of an update. ``query`` (a :class:`QuerySpec` or REST query parameters)
    applies to reads. ``explain=False`` decides as the engine does (no trace of
    rules, the fast compiled form). Raises the core's ``InvalidPath``/``InvalidData``/
    ``InvalidQuery`` for bad input and :class:`RulesError` for bad rules text.
    """
    rules = ruleset if isinstance(ruleset, Ruleset) else Ruleset.compile(ruleset)
    at_ms = int(time.time() * 1000) if now is None else now
    view = MemoryView(normalize(data_json))
    path = paths.parse(path_str)
    if op == "read":
        spec = parse_rest(query) if isinstance(query, Mapping) else query
        return rules.can_read(path, auth=auth, root=view, now=at_ms, query=spec, explain=explain)
    if op == "write":
        node = _resolved(value, path, at_ms, view)
        return rules.can_write(path, node, auth=auth, root=view, now=at_ms, explain=explain)
    if op == "update":
        if not isinstance(value, Mapping):
            raise TypeError("an update needs a mapping of relative paths to values")
        updates: dict[tuple[str, ...], Node] = {}
        for rel, sub in value.items():
            rel_path = paths.parse(rel)
            updates[rel_path] = _resolved(sub, path + rel_path, at_ms, view)
        return rules.can_update(path, updates, auth=auth, root=view, now=at_ms, explain=explain)
    raise ValueError(f"unknown operation {op!r}")


def _resolved(value: Any, at: tuple[str, ...], now: int, view: MemoryView) -> Node:
    return resolve(normalize(value, at), at, now, view.node)


_SDK_ORDER = {"orderByKey": "$key", "orderByValue": "$value", "orderByPriority": "$priority"}
_BOUNDS = ("startAt", "startAfter", "endAt", "endBefore", "equalTo")


def query_params(text: str) -> dict[str, str]:
    """REST query parameters from ``text``, which may also use the SDKs' names:
    ``orderByChild=age&startAt=18&limitToFirst=10`` is ``orderBy="age"&startAt=18&limitToFirst=10``;
    ``orderByKey`` (``orderByValue``, ``orderByPriority``) stand alone. A bound that is not JSON is
    taken as a string (``equalTo=bob``)."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(text.lstrip("?"), keep_blank_values=True):
        if name == "orderByChild":
            params["orderBy"] = json.dumps(value)
        elif name in _SDK_ORDER:
            params["orderBy"] = json.dumps(_SDK_ORDER[name])
        elif name in _BOUNDS and not _is_json(value):
            params[name] = json.dumps(value)
        else:
            params[name] = value
    return params


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
