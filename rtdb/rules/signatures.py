"""Static types of rule expressions and the members each type has.

The type system is the one Firebase enforces at deploy time (as recorded by
targaryen's live fixtures): values of known type are checked when the rules
load; ``any`` (fields of ``auth``, priorities) and ``primitive`` (``val()``)
defer the check to run time, where a mismatch makes the rule false.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING = "string"
NUMBER = "number"
BOOLEAN = "boolean"
NULL = "null"
PRIMITIVE = "primitive"
ANY = "any"
SNAPSHOT = "RuleDataSnapshot"
QUERY = "Query"
REGEXP = "RegExp"
ARRAY = "array"

FUZZY = frozenset({ANY, PRIMITIVE})
PRIMITIVES = frozenset({STRING, NUMBER, BOOLEAN, NULL, PRIMITIVE})


@dataclass(frozen=True, slots=True)
class Method:
    owner: str
    name: str
    args: tuple[str, ...] | None  # None: hasChildren's own rule
    returns: str


Type = str | Method


def describe(t: Type) -> str:
    return f"method {t.name}()" if isinstance(t, Method) else t


def _m(owner: str, name: str, args: tuple[str, ...] | None, returns: str) -> Method:
    return Method(owner, name, args, returns)


SNAPSHOT_MEMBERS: dict[str, Type] = {
    "val": _m(SNAPSHOT, "val", (), PRIMITIVE),
    "child": _m(SNAPSHOT, "child", (STRING,), SNAPSHOT),
    "parent": _m(SNAPSHOT, "parent", (), SNAPSHOT),
    "hasChild": _m(SNAPSHOT, "hasChild", (STRING,), BOOLEAN),
    "hasChildren": _m(SNAPSHOT, "hasChildren", None, BOOLEAN),
    "exists": _m(SNAPSHOT, "exists", (), BOOLEAN),
    "getPriority": _m(SNAPSHOT, "getPriority", (), ANY),
    "isNumber": _m(SNAPSHOT, "isNumber", (), BOOLEAN),
    "isString": _m(SNAPSHOT, "isString", (), BOOLEAN),
    "isBoolean": _m(SNAPSHOT, "isBoolean", (), BOOLEAN),
}

STRING_MEMBERS: dict[str, Type] = {
    "length": NUMBER,
    "contains": _m(STRING, "contains", (STRING,), BOOLEAN),
    "beginsWith": _m(STRING, "beginsWith", (STRING,), BOOLEAN),
    "endsWith": _m(STRING, "endsWith", (STRING,), BOOLEAN),
    "replace": _m(STRING, "replace", (STRING, STRING), STRING),
    "toLowerCase": _m(STRING, "toLowerCase", (), STRING),
    "toUpperCase": _m(STRING, "toUpperCase", (), STRING),
    "matches": _m(STRING, "matches", (REGEXP,), BOOLEAN),
}

QUERY_MEMBERS: dict[str, Type] = {
    "orderByKey": BOOLEAN,
    "orderByPriority": BOOLEAN,
    "orderByValue": BOOLEAN,
    "orderByChild": STRING,
    "startAt": PRIMITIVE,
    "endAt": PRIMITIVE,
    "equalTo": PRIMITIVE,
    "limitToFirst": NUMBER,
    "limitToLast": NUMBER,
}

MEMBER_TABLES: dict[str, dict[str, Type]] = {
    SNAPSHOT: SNAPSHOT_MEMBERS,
    STRING: STRING_MEMBERS,
    PRIMITIVE: STRING_MEMBERS,  # a member of a primitive is taken as a string member
    QUERY: QUERY_MEMBERS,
}

ADDITION = frozenset({STRING, NUMBER})
ARITHMETIC = frozenset({NUMBER})
EQUALITY = frozenset({STRING, NUMBER, BOOLEAN, NULL})
ORDERING = frozenset({STRING, NUMBER, NULL})
