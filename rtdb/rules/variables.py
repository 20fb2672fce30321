"""What a rule can see while it runs: ``auth``, ``now``, ``root``, ``data``,
``newData``, ``query`` and the ``$location`` captures."""

from __future__ import annotations

from typing import Any

from rtdb.core.query import QuerySpec
from rtdb.rules.snapshot import Snapshot

QUERY_MEMBERS = (
    "orderByKey", "orderByPriority", "orderByValue", "orderByChild",
    "startAt", "endAt", "equalTo", "limitToFirst", "limitToLast",
)  # fmt: skip


class Env:
    """The variables of one rule run. ``root``, ``data`` and ``newData`` are real
    locations (never a nowhere snapshot); a decision re-points ``data``/``newData``
    and ``captures`` from rule to rule rather than building a new ``Env``."""

    __slots__ = ("auth", "captures", "data", "new_data", "notes", "now", "query", "root")

    def __init__(
        self,
        *,
        auth: Any,
        now: int,
        root: Snapshot,
        data: Snapshot,
        new_data: Snapshot | None,
        query: dict[str, Any],
        captures: dict[str, str],
    ) -> None:
        self.auth = auth
        self.now = now
        self.root = root
        self.data = data
        self.new_data = new_data
        self.query = query
        self.captures = captures
        self.notes: list[tuple[str, Any]] | None = None


def query_variables(spec: QuerySpec | None) -> dict[str, Any]:
    """The ``query`` object for a read.

    A plain read (no query) orders by key, as recorded against Firebase. A
    range whose start and end are the same bound is reported as ``equalTo``
    (the wire protocol cannot tell the two apart).
    """
    out: dict[str, Any] = {
        "orderByKey": True,
        "orderByPriority": False,
        "orderByValue": False,
        "orderByChild": None,
        "startAt": None,
        "endAt": None,
        "equalTo": None,
        "limitToFirst": None,
        "limitToLast": None,
    }
    if spec is None:
        return out
    out["orderByKey"] = spec.order_by == "key"
    out["orderByPriority"] = spec.order_by == "priority"
    out["orderByValue"] = spec.order_by == "value"
    out["orderByChild"] = "/".join(spec.child) if spec.order_by == "child" else None
    if spec.start is not None and spec.start == spec.end:
        out["equalTo"] = spec.start.value
    else:
        out["startAt"] = spec.start.value if spec.start is not None else None
        out["endAt"] = spec.end.value if spec.end is not None else None
    if spec.limit is not None:
        out["limitToLast" if spec.from_last else "limitToFirst"] = spec.limit
    return out
