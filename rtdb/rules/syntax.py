"""The typed syntax tree of one rule expression (what the parser produces)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None
    offset: int


@dataclass(frozen=True, slots=True)
class RegexLiteral:
    pattern: str
    flags: str
    offset: int


@dataclass(frozen=True, slots=True)
class ArrayLiteral:
    elements: tuple[Expr, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Member:
    """``obj.name``"""

    obj: Expr
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Index:
    """``obj[key]``"""

    obj: Expr
    key: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Call:
    callee: Expr
    args: tuple[Expr, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic, comparison and equality operators."""

    op: str
    left: Expr
    right: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Logical:
    """``&&`` and ``||`` (short-circuit)."""

    op: str
    left: Expr
    right: Expr
    offset: int


@dataclass(frozen=True, slots=True)
class Conditional:
    test: Expr
    then: Expr
    otherwise: Expr
    offset: int


Expr = Literal | RegexLiteral | ArrayLiteral | Name | Member | Index | Call | Unary | Binary | Logical | Conditional


def render(e: Expr) -> str:
    """A compact source-like rendering, used in traces."""
    if isinstance(e, Literal):
        v = e.value
        if isinstance(v, str):
            return repr(v)
        if v is None or isinstance(v, bool):
            return "null" if v is None else str(v).lower()
        return str(v)
    if isinstance(e, RegexLiteral):
        return f"/{e.pattern}/{e.flags}"
    if isinstance(e, ArrayLiteral):
        return "[" + ", ".join(render(x) for x in e.elements) + "]"
    if isinstance(e, Name):
        return e.name
    if isinstance(e, Member):
        return f"{render(e.obj)}.{e.name}"
    if isinstance(e, Index):
        return f"{render(e.obj)}[{render(e.key)}]"
    if isinstance(e, Call):
        return f"{render(e.callee)}(" + ", ".join(render(a) for a in e.args) + ")"
    if isinstance(e, Unary):
        return f"{e.op}{render(e.operand)}"
    if isinstance(e, (Binary, Logical)):
        return f"({render(e.left)} {e.op} {render(e.right)})"
    return f"({render(e.test)} ? {render(e.then)} : {render(e.otherwise)})"
