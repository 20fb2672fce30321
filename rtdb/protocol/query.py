"""The wire query object (spec 5.2) ⇄ :class:`rtdb.core.query.QuerySpec`, and query identity."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from rtdb.core import path as paths
from rtdb.core.errors import InvalidPath, InvalidQuery
from rtdb.core.query import Bound, OrderBy, QuerySpec, check_bound_value, check_limit
from rtdb.protocol.messages import WireQuery

MIN_NAME = "[MIN_NAME]"
MAX_NAME = "[MAX_NAME]"
DEFAULT_QUERY_ID = "default"

_canonical = msgspec.json.Encoder(order="sorted")


def query_id(query: WireQuery | UnsetType) -> str:
    """The client's identity of a query: sorted, compact JSON, or ``default``."""
    if query is UNSET or query == WireQuery():
        return DEFAULT_QUERY_ID
    return _canonical.encode(query).decode("utf-8")


def to_spec(query: WireQuery | UnsetType) -> QuerySpec | None:
    """The :class:`QuerySpec` a wire query object describes (``None`` for none).

    Raises :class:`InvalidQuery` for a malformed object.
    """
    if query is UNSET or query == WireQuery():
        return None
    order_by: OrderBy
    child: paths.Path = ()
    index = query.i
    if index is UNSET or index == ".priority":
        order_by = "priority"
    elif index == ".key":
        order_by = "key"
    elif index == ".value":
        order_by = "value"
    else:
        order_by = "child"
        try:
            child = paths.parse(index)
        except InvalidPath:
            raise InvalidQuery(f"invalid index path {index!r}") from None
        if not child:
            raise InvalidQuery("invalid index path")
    start = _start_bound(query) if query.sp is not UNSET else None
    end = _end_bound(query) if query.ep is not UNSET else None
    limit: int | None = None
    from_last = False
    if query.l is not UNSET:
        limit = check_limit(query.l, "limit")
        from_last = query.vf == "r"
    return QuerySpec(order_by, child, start, end, limit, from_last)


def _check_bound_value(value: Any, name: str | UnsetType, what: str) -> Any:
    if isinstance(value, (dict, list)):
        raise InvalidQuery("query bounds must be primitive values")
    if name is not UNSET:
        check_bound_value(name, what)
    return check_bound_value(value, what)


def _start_bound(query: WireQuery) -> Bound:
    value = _check_bound_value(query.sp, query.sn, "start")
    inclusive = query.sin if query.sin is not UNSET else True
    name = query.sn if query.sn is not UNSET else None
    if name == MAX_NAME:
        # (v, MAX_NAME): every child whose index value is v lies before the bound.
        return Bound(value, None, inclusive=False)
    if name == MIN_NAME:
        return Bound(value, None, inclusive=True)
    return Bound(value, name, inclusive)


def _end_bound(query: WireQuery) -> Bound:
    value = _check_bound_value(query.ep, query.en, "end")
    inclusive = query.ein if query.ein is not UNSET else True
    name = query.en if query.en is not UNSET else None
    if name == MIN_NAME:
        return Bound(value, None, inclusive=False)
    if name == MAX_NAME:
        return Bound(value, None, inclusive=True)
    return Bound(value, name, inclusive)


def from_spec(spec: QuerySpec | None) -> WireQuery:
    """The wire object the JS SDK would send for ``spec`` (for the Python SDK)."""
    if spec is None:
        return WireQuery()
    q = WireQuery()
    if spec.order_by == "key":
        q.i = ".key"
    elif spec.order_by == "value":
        q.i = ".value"
    elif spec.order_by == "child":
        q.i = "/".join(spec.child)
    if spec.start is not None:
        q.sp = spec.start.value
        q.sin = spec.start.inclusive
        if spec.start.key is not None:
            q.sn = spec.start.key
        elif not spec.start.inclusive and spec.order_by != "key":
            q.sn = MAX_NAME
    if spec.end is not None:
        q.ep = spec.end.value
        q.ein = spec.end.inclusive
        if spec.end.key is not None:
            q.en = spec.end.key
        elif not spec.end.inclusive and spec.order_by != "key":
            q.en = MIN_NAME
    if spec.limit is not None:
        q.l = spec.limit
        q.vf = "r" if spec.from_last else "l"
    return q
