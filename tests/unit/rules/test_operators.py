"""JavaScript value semantics of rule operators."""

from __future__ import annotations

import math

import pytest

from rtdb.rules.errors import EvalError
from rtdb.rules.operators import add, arithmetic, compare, equals, get_property, js_str, utf16_len


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"), (1.0, "1"), (-0.0, "0"), (0.5, "0.5"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
        (1e-7, "1e-7"), (0.000001, "0.000001"), (123.456, "123.456"), (-2.5e-10, "-2.5e-10"),
        (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (2**60, "1152921504606847000"),
        (1 / 3, "0.3333333333333333"), (True, "true"), (None, "null"),
    ],
)  # fmt: skip
def test_number_to_string_like_javascript(value: object, text: str) -> None:
    assert js_str(value) == text


def test_equality_is_strict_and_typed() -> None:
    assert equals(1, 1.0)
    assert not equals(True, 1)
    assert not equals("1", 1)
    assert not equals(math.nan, math.nan)
    with pytest.raises(EvalError):
        equals([1], [1])


def test_ordering_needs_two_numbers_or_two_strings() -> None:
    assert compare("<", "B", "a")
    assert compare("<", "\U0001f600", "\uffff")  # UTF-16 code units, as JavaScript (Python says >)
    assert not compare("<", math.nan, 1)
    for a, b in ((None, None), (1, "1"), (True, False)):
        with pytest.raises(EvalError):
            compare("<", a, b)


def test_arithmetic() -> None:
    assert add("a", 1) == "a1" and add(1, 2) == 3
    assert math.isnan(arithmetic("/", 1, 0)) and math.isnan(arithmetic("%", 1, 0))
    assert arithmetic("%", -5, 3) == -2
    assert arithmetic("/", 1, 4) == 0.25
    assert isinstance(arithmetic("*", 2**40, 2**40), float)
    for op in "-*/%":
        with pytest.raises(EvalError):
            arithmetic(op, "1", 1)
    with pytest.raises(EvalError):
        add(True, 1)


def test_properties_of_unknown_values() -> None:
    assert get_property({"a": 1}, "a") == 1
    assert get_property(None, "a") is None
    assert get_property("h\U0001f600", "length") == 3 == utf16_len("h\U0001f600")
    assert get_property([5, 6], 1) == 6
    assert get_property(5, "x") is None
