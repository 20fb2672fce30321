"""Snapshot reads at locations known at load (the fast form) answer exactly as
the general snapshot methods (the explaining form) do, wherever a rule runs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rtdb.core.value import normalize
from rtdb.rules import syntax as s
from rtdb.rules.compiler import _Compiler
from rtdb.rules.errors import EvalError
from rtdb.rules.locations import Location, locate
from rtdb.rules.parser import parse
from rtdb.rules.simulate import MemoryView
from rtdb.rules.snapshot import ObjectValue, Overlay, Snapshot, Tree
from rtdb.rules.variables import Env

OLD = {"a": {"b": {"c": 1, "d": "s", ".priority": 3}, "e": True, "f": {".value": 2.5, ".priority": "p"}}, "x": 5}
WRITES: list[tuple[tuple[str, ...], Any]] = [
    (("a", "b"), {"c": 2, "n": {"m": False}, ".priority": 9}),
    (("a", "b", "c"), "z"),
    (("a",), None),
    (("a", "b", "d"), None),
    (("q", "r"), {"s": 1}),
]
CHAINS = [
    "", ".child('b')", ".child('a/b')", ".child('b/c')", ".child('x.y')", ".child('')", ".child('/')",
    ".parent()", ".parent().parent()", ".child('b').parent().parent()", ".parent().child('b')",
    ".child('x.y').parent()", ".parent().parent().parent().child('a')", ".child('c').parent().child('d')",
]  # fmt: skip
METHODS = [
    "exists()", "val()", "isString()", "isNumber()", "isBoolean()", "getPriority()", "hasChildren()",
    "hasChildren(['b'])", "hasChildren(['c', 'd'])", "hasChildren(['', 'c'])", "hasChildren(['x.y'])",
    "hasChildren(['n/m'])", "hasChild('c')", "hasChild('n/m')", "hasChild('')", "hasChild('#')",
]  # fmt: skip
AT = [(), ("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "n")]


def _forms(source: str) -> tuple[Any, Any]:
    tree = parse(source)
    return _Compiler((), True, noting=False).expr(tree)[1], _Compiler((), True, noting=True).expr(tree)[1]


def _env(write: tuple[tuple[str, ...], Any], at: tuple[str, ...], *, known: bool) -> Env:
    old = Tree(MemoryView(normalize(OLD)))
    new = Overlay(old, [(write[0], normalize(write[1]))])
    if known and at[: len(write[0])] == write[0]:
        new.known(at, new.node(at))
    return Env(
        auth=None, now=0, root=Snapshot(old, ()), data=Snapshot(old, at), new_data=Snapshot(new, at),
        query={}, captures={},
    )  # fmt: skip


def _outcome(fn: Any, env: Env) -> Any:
    try:
        value = fn(env)
    except EvalError:
        return "error"
    return "<object>" if isinstance(value, ObjectValue) else value


@pytest.mark.parametrize(("base", "method"), list(itertools.product(("root", "data", "newData"), METHODS)))
def test_fast_reads_agree_with_snapshot_methods(base: str, method: str) -> None:
    for chain in CHAINS:
        source = f"{base}{chain}.{method}"
        fast, general = _forms(source)
        for write, at, known in itertools.product(WRITES, AT, (False, True)):
            noted_env = _env(write, at, known=known)
            noted_env.notes = []
            assert _outcome(fast, _env(write, at, known=known)) == _outcome(general, noted_env), (source, write, at)


def test_static_child_and_parent_chains_resolve_at_load() -> None:
    def where(source: str) -> Location | None:
        e = parse(source)
        assert isinstance(e, s.Call) and isinstance(e.callee, s.Member)
        return locate(e.callee.obj)

    assert where("newData.child('a').child('b/c').val()") == Location("newData", 0, ("a", "b", "c"))
    assert where("data.parent().child('x').parent().parent().exists()") == Location("data", 2, ())
    assert where("root.child('a.b').child('c').exists()") == Location("root", 0, None)
    assert where("data.child($k).val()") is None  # a name computed at run time
    assert where("(auth != null ? data : newData).val()") is None
