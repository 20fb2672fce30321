"""Queries: one description (:class:`QuerySpec`), parsed from REST parameters
(or wire query objects), evaluated over a node's children with Firebase's orderings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rtdb.core import path as paths
from rtdb.core.errors import InvalidData, InvalidPath, InvalidQuery, TooBig
from rtdb.core.ordering import MAX_KEY_ORDER, MIN_KEY_ORDER, key_order, priority_rank, value_order
from rtdb.core.value import MAX_SAFE_INT, PRIORITY, Node, child_at, normalize

OrderBy = Literal["key", "value", "priority", "child"]

QUERY_PARAMS = ("orderBy", "startAt", "startAfter", "endAt", "endBefore", "equalTo", "limitToFirst", "limitToLast")
MIN_NAME = "[MIN_NAME]"  # the JS SDK's sentinels below and above every key; it sends them as bound keys
MAX_NAME = "[MAX_NAME]"


@dataclass(frozen=True, slots=True)
class Bound:
    value: Any
    key: str | None = None
    inclusive: bool = True


@dataclass(frozen=True, slots=True)
class QuerySpec:
    order_by: OrderBy = "priority"
    child: paths.Path = ()
    start: Bound | None = None
    end: Bound | None = None
    limit: int | None = None
    from_last: bool = False

    @property
    def is_default(self) -> bool:
        return self.start is None and self.end is None and self.limit is None

    def index_value(self, key: str, node: Node) -> Node:
        """What this query orders a child by: the child at ``child``, the node, or its priority."""
        if self.order_by == "child":
            return child_at(node, self.child)
        if self.order_by == "priority":
            return node.get(PRIORITY) if isinstance(node, dict) else None
        if self.order_by == "key":
            return None
        return node

    def sort_key(self, key: str, index_value: Node) -> tuple[Any, ...]:
        """The position of a child with ``key`` whose index value is ``index_value``."""
        if self.order_by == "key":
            return (key_order(key),)
        if self.order_by == "priority":
            return (priority_rank(index_value), key_order(key))
        return (value_order(index_value), key_order(key))

    def _bound_key(self, bound: Bound, *, low: bool) -> tuple[Any, ...]:
        # Without a key, an inclusive bound reaches every child whose index value
        # equals it and an exclusive one none of them (Firebase's startAfter(v) /
        # endBefore(v) = (v, [MAX_NAME]) / (v, [MIN_NAME])).
        default = MIN_KEY_ORDER if low == bound.inclusive else MAX_KEY_ORDER
        name = key_order(bound.key) if bound.key is not None else default
        if self.order_by == "key":
            return (key_order(str(bound.value)),)
        if self.order_by == "priority":
            return (priority_rank(bound.value), name)
        return (value_order(bound.value), name)

    def in_range(self, sort_key: tuple[Any, ...]) -> bool:
        if self.start is not None:
            lo = self._bound_key(self.start, low=True)
            if sort_key < lo or (not self.start.inclusive and sort_key == lo):
                return False
        if self.end is not None:
            hi = self._bound_key(self.end, low=False)
            if sort_key > hi or (not self.end.inclusive and sort_key == hi):
                return False
        return True

    def select(self, indexed: Iterable[tuple[str, Node]]) -> list[str]:
        """The keys that survive the query, in query order, from ``(key, index_value)`` pairs."""
        ranked = [(self.sort_key(k, v), k) for k, v in indexed]
        ranked = [r for r in ranked if self.in_range(r[0])]
        ranked.sort(key=lambda r: r[0])
        if self.limit is not None:
            if self.limit == 0:
                return []
            ranked = ranked[max(len(ranked) - self.limit, 0) :] if self.from_last else ranked[: self.limit]
        return [k for _, k in ranked]

    def apply(self, kids: Mapping[str, Node]) -> list[tuple[str, Node]]:
        """The children that survive the query, in query order."""
        keys = self.select((k, self.index_value(k, n)) for k, n in kids.items())
        return [(k, kids[k]) for k in keys]


def _decode_json(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidQuery(f"{name} must be a valid JSON value") from None


def _parse_bound(raw: str, name: str, order_by: OrderBy) -> Bound:
    try:
        value = json.loads(raw)
        key = None
    except (ValueError, RecursionError):
        try:
            value, end = json.JSONDecoder().raw_decode(raw)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise InvalidQuery(f"{name} must be a valid JSON value") from None
        rest = raw[end:].lstrip()
        if not rest.startswith(","):
            raise InvalidQuery(f"{name} must be a valid JSON value") from None
        key = _decode_json(rest[1:].strip(), name)
        if not isinstance(key, str):
            raise InvalidQuery(f"{name} key must be a string") from None
    if isinstance(value, (dict, list)):
        raise InvalidQuery(f"{name} must be a primitive JSON value")
    value = check_bound_value(value, name)
    if key is not None:
        check_bound_value(key, name)
    if order_by == "key":
        if not isinstance(value, str):
            raise InvalidQuery(f"{name}: when orderBy is \"$key\", {name} must be a string")
        if key is not None:
            raise InvalidQuery(f"{name}: a key cannot be given when orderBy is \"$key\"")
    inclusive = name not in ("startAfter", "endBefore")
    if key in (MIN_NAME, MAX_NAME):
        # (v, [MIN_NAME]) and (v, [MAX_NAME]) sit below and above every child whose index
        # value is v: as a keyless bound, inclusive where it takes all of them in.
        low = name in ("startAt", "startAfter", "equalTo")
        return Bound(value, None, inclusive=(key == MIN_NAME) == low)
    return Bound(value, key, inclusive)


def check_bound_value(value: Any, name: str) -> Any:
    """A primitive bound as a stored value would be: NaN, a number beyond a double's
    range or a string with a lone surrogate cannot be compared with data."""
    try:
        return normalize(value)
    except (InvalidData, TooBig):
        raise InvalidQuery(f"{name} must be null, a boolean, a finite number or a valid string") from None


MAX_LIMIT = MAX_SAFE_INT  # the largest integer every client holds exactly


def check_limit(n: int, name: str) -> int:
    if not 0 <= n <= MAX_LIMIT:
        raise InvalidQuery(f"{name} must be a non-negative integer no larger than {MAX_LIMIT}")
    return n


def _parse_limit(raw: str, name: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be a non-negative integer") from None
    return check_limit(n, name)


def parse_rest(params: Mapping[str, str]) -> QuerySpec | None:
    """The query described by REST parameters, or ``None`` for a plain read."""
    present = [p for p in QUERY_PARAMS if p in params]
    if not present:
        return None
    if "orderBy" not in params:
        raise InvalidQuery("orderBy must be defined when other query parameters are defined")
    order_raw = _decode_json(params["orderBy"], "orderBy")
    if not isinstance(order_raw, str):
        raise InvalidQuery("orderBy must be a JSON string")
    order_by: OrderBy
    child: paths.Path = ()
    if order_raw == "$key":
        order_by = "key"
    elif order_raw == "$value":
        order_by = "value"
    elif order_raw == "$priority":
        order_by = "priority"
    else:
        order_by = "child"
        try:
            child = paths.parse(order_raw)
        except InvalidPath:
            raise InvalidQuery("orderBy must be a valid child path") from None
        if not child:
            raise InvalidQuery("orderBy must be a valid child path")
    if "equalTo" in params and any(p in params for p in ("startAt", "startAfter", "endAt", "endBefore")):
        raise InvalidQuery("equalTo cannot be combined with startAt, startAfter, endAt or endBefore")
    if "startAt" in params and "startAfter" in params:
        raise InvalidQuery("Only one of startAt and startAfter may be specified")
    if "endAt" in params and "endBefore" in params:
        raise InvalidQuery("Only one of endAt and endBefore may be specified")
    if "limitToFirst" in params and "limitToLast" in params:
        raise InvalidQuery("Only one of limitToFirst and limitToLast may be specified")
    start = end = None
    if "equalTo" in params:
        start = end = _parse_bound(params["equalTo"], "equalTo", order_by)
    for name in ("startAt", "startAfter"):
        if name in params:
            start = _parse_bound(params[name], name, order_by)
    for name in ("endAt", "endBefore"):
        if name in params:
            end = _parse_bound(params[name], name, order_by)
    limit = None
    from_last = False
    if "limitToFirst" in params:
        limit = _parse_limit(params["limitToFirst"], "limitToFirst")
    if "limitToLast" in params:
        limit = _parse_limit(params["limitToLast"], "limitToLast")
        from_last = True
    return QuerySpec(order_by, child, start, end, limit, from_last)


def parse_shallow(params: Mapping[str, str]) -> QuerySpec | None:
    """The window of a ``shallow=true`` listing: ``limitToFirst`` keys in key order, after
    ``startAfter`` (firebase-tools pages through big nodes this way). ``startAfter`` is a
    key, JSON-quoted or bare. Other query parameters cannot be combined with ``shallow``."""
    if any(p in params for p in QUERY_PARAMS if p not in ("limitToFirst", "startAfter")):
        raise InvalidQuery("shallow can be combined with limitToFirst and startAfter only")
    if "limitToFirst" not in params and "startAfter" not in params:
        return None
    start = None
    if "startAfter" in params:
        raw = params["startAfter"]
        try:
            key = json.loads(raw)
        except (ValueError, RecursionError):
            key = raw
        key = key if isinstance(key, str) else raw
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidQuery("startAfter must be a key of valid UTF-8") from None
        start = Bound(key, None, inclusive=False)
    limit = _parse_limit(params["limitToFirst"], "limitToFirst") if "limitToFirst" in params else None
    return QuerySpec("key", (), start, None, limit)
