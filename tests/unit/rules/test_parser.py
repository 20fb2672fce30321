"""The expression parser: JavaScript precedence for the supported subset,
and a clear refusal (with an offset) for everything else."""

from __future__ import annotations

import pytest

from rtdb.rules.compiler import compile_rule
from rtdb.rules.errors import ExpressionError
from rtdb.rules.parser import parse, tokenize
from rtdb.rules.syntax import render


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
        ("-a.b + 2 * 3 == 7 && !x || y", "((((-a.b + (2 * 3)) == 7) && !x) || y)"),
        ("1 - 2 - 3", "((1 - 2) - 3)"),
        ("1 / 2 % 3", "((1 / 2) % 3)"),
        ("a < b == c >= d", "((a < b) == (c >= d))"),
        ("a || b && c", "(a || (b && c))"),
        ("root.child('x').val()", "root.child('x').val()"),
        ("root['exists']()", "root['exists']()"),
        ("x.matches(/a[/]b$/i)", "x.matches(/a[/]b$/i)"),
        ("f([1, 'a'])", "f([1, 'a'])"),
        ("!!a", "!!a"),
        ("a / b / c", "((a / b) / c)"),
    ],
)
def test_precedence(source: str, shape: str) -> None:
    assert render(parse(source)) == shape


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("var foo = 8", "Unexpected token foo", 4),
        ("root = 5", "Assignment is not allowed", 5),
        ("a; b", "single expression", 1),
        ("(2**2) == 4", "** operator", 2),
        ("+1", "unary + operator", 0),
        ("a ==", "Unexpected end", 4),
        ("a # b", "Unexpected character", 2),
        ("'abc", "Unterminated string", 0),
        ("x.matches(/abc", "Unterminated regular expression", 10),
        ("({a: 1})", "Object literals", 1),
        ("a.1", "Unexpected token 0.1", 1),
        ("12abc", "Invalid number", 0),
        ("a => b", "Functions are not supported", 2),
    ],
)
def test_refusals_point_at_the_problem(source: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert message in info.value.message
    assert info.value.offset == offset


def test_tokens_keep_string_escapes_and_numbers() -> None:
    toks = tokenize(r"'a\'b\n\u00e9' 0x1F 1.5e3 .5")
    assert [t.value for t in toks[:-1]] == ["a'b\né", 31, 1500.0, 0.5]


def test_a_slash_after_a_value_divides() -> None:
    assert render(parse("a.b / 2 / c")) == "((a.b / 2) / c)"
    assert render(parse("(a) / 2")) == "(a / 2)"


def test_nesting_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="nested"):
        parse("(" * 300 + "true" + ")" * 300)
    with pytest.raises(ExpressionError, match="nested"):
        compile_rule(" && ".join(["true"] * 300), captures=(), write=False)
    assert compile_rule(" && ".join(["true"] * 150), captures=(), write=False).fn is not None
