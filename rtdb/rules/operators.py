"""Runtime meaning of rule operators: JavaScript values, without coercion.

A type mismatch raises :class:`EvalError`, which makes the rule false.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from rtdb.rules.errors import EvalError
from rtdb.rules.snapshot import ObjectValue

_MAX_SAFE = 2**53


_JS_TYPES: dict[type, str] = {
    type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
    dict: "Object", ObjectValue: "Object", list: "Array",
}  # fmt: skip
_PLAIN = frozenset({type(None), bool, int, float, str})  # equal exactly when Python says so


def js_type(v: Any) -> str:
    known = _JS_TYPES.get(type(v))
    if known is not None:
        return known
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (dict, ObjectValue)):
        return "Object"
    if isinstance(v, list):
        return "Array"
    return type(v).__name__


def js_number(v: float) -> int | float:
    """Keep Python numbers within what a JavaScript double can say."""
    if isinstance(v, int) and abs(v) > _MAX_SAFE:
        return float(v)
    return v


def js_str(v: Any) -> str:
    """``String(v)`` for the primitives a rule can concatenate."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) <= _MAX_SAFE else _float_str(float(v))
    if isinstance(v, float):
        return _float_str(v)
    raise EvalError(f"cannot convert {js_type(v)} to a string")


def _float_str(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mant, _, exp_text = repr(abs(x)).partition("e")
    int_part, _, frac = mant.partition(".")
    frac = "" if frac == "0" else frac
    raw = int_part + frac
    point = len(int_part) + (int(exp_text) if exp_text else 0)
    stripped = raw.lstrip("0")
    point -= len(raw) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp = ("+" if e >= 0 else "-") + str(abs(e))
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + exp
    return sign + out


def utf16_len(s: str) -> int:
    if s.isascii():
        return len(s)
    return len(s) + sum(1 for c in s if ord(c) > 0xFFFF)


def _astral(s: str) -> bool:
    return any(ord(c) > 0xFFFF for c in s)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_EQUALITY_TYPES = frozenset({"string", "number", "boolean", "null", "Object"})


def equals(a: Any, b: Any) -> bool:
    """``===`` (rules have no ``==`` coercion)."""
    if type(a) is type(b) and type(a) in _PLAIN:
        return bool(a == b)
    ta, tb = js_type(a), js_type(b)
    if ta not in _EQUALITY_TYPES or tb not in _EQUALITY_TYPES:
        raise EvalError(f"cannot compare {ta} with {tb} for equality")
    if ta != tb:
        return False
    if ta == "Object":
        return a is b
    return bool(a == b)


def compare(op: str, a: Any, b: Any) -> bool:
    """``< <= > >=``: two numbers or two strings, anything else is an error."""
    if _is_number(a) and _is_number(b):
        pass
    elif isinstance(a, str) and isinstance(b, str):
        if _astral(a) or _astral(b):  # JavaScript orders strings by UTF-16 code units
            a, b = a.encode("utf-16-be"), b.encode("utf-16-be")
    else:
        raise EvalError(f"cannot order {js_type(a)} and {js_type(b)}")
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def comparison(op: str) -> Callable[[Any, Any], bool]:
    """``compare`` for one operator, quicker for two numbers of one Python type."""
    fast = _ORDERINGS[op]

    def ordered(a: Any, b: Any) -> bool:
        if type(a) is type(b) and (type(a) is int or type(a) is float):
            return bool(fast(a, b))
        return compare(op, a, b)

    return ordered


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def add(a: Any, b: Any) -> Any:
    """``+``: numbers add, a string on either side concatenates; nothing else."""
    if not (_is_number(a) or isinstance(a, str)) or not (_is_number(b) or isinstance(b, str)):
        raise EvalError(f"cannot add {js_type(a)} and {js_type(b)}")
    if isinstance(a, str) or isinstance(b, str):
        return js_str(a) + js_str(b)
    return js_number(a + b)


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """``- * / %`` on numbers; division or remainder by zero gives NaN."""
    if not _is_number(a) or not _is_number(b):
        raise EvalError(f"{op} needs numbers, got {js_type(a)} and {js_type(b)}")
    try:
        if op == "-":
            return js_number(a - b)
        if op == "*":
            return js_number(a * b)
        if op == "/":
            return math.nan if b == 0 else js_number(a / b)
        if b == 0 or math.isinf(a):
            return math.nan
        if math.isinf(b):
            return a
        r = math.fmod(a, b)
        return js_number(int(r) if isinstance(a, int) and isinstance(b, int) else r)
    except OverflowError:
        return math.inf if op == "*" else math.nan


def negate(v: Any) -> Any:
    if not _is_number(v):
        raise EvalError(f"unary - needs a number, got {js_type(v)}")
    return -v


def property_of(name: str) -> Callable[[Any], Any]:
    """``get_property(obj, name)`` for a name known at load, quicker on objects and strings."""

    def prop(obj: Any) -> Any:
        if type(obj) is dict:
            return obj.get(name)
        return get_property(obj, name)

    if name != "length":
        return prop

    def length(obj: Any) -> Any:
        if type(obj) is str and obj.isascii():
            return len(obj)
        return get_property(obj, name)

    return length


def get_property(obj: Any, name: Any) -> Any:
    """``obj.name`` / ``obj[name]`` on values of unknown type (``auth`` and friends)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        key = name if isinstance(name, str) else js_str(name)
        return obj.get(key)
    if isinstance(obj, (str, list)):
        if name == "length":
            return utf16_len(obj) if isinstance(obj, str) else len(obj)
        if _is_number(name) and float(name).is_integer() and 0 <= name < len(obj):
            return obj[int(name)]
    return None
