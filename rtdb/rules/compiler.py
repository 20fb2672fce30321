"""Type-check a rule expression and compile it to a Python closure.

Evaluation never parses: each syntax node becomes a function of the
:class:`~rtdb.rules.variables.Env`. Compile-time errors raise
:class:`ExpressionError` with the offset of the offending node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rtdb.rules import operators as ops
from rtdb.rules import signatures as t
from rtdb.rules import syntax as s
from rtdb.rules.errors import EvalError, ExpressionError
from rtdb.rules.locations import locate, located_call
from rtdb.rules.parser import parse
from rtdb.rules.regex import compile_regex
from rtdb.rules.snapshot import Snapshot
from rtdb.rules.variables import Env

Fn = Callable[[Env], Any]
Typed = tuple[t.Type, Fn]

MAX_DEPTH = 200
FALSE, TRUE, ERROR = 0, 1, 2  # indexes of CompiledRule.counts
_UNNOTED = frozenset({t.SNAPSHOT, t.QUERY, t.REGEXP, t.ARRAY})

_VARIABLES: dict[str, tuple[t.Type, Fn]] = {
    "auth": (t.ANY, lambda env: env.auth),
    "now": (t.NUMBER, lambda env: env.now),
    "root": (t.SNAPSHOT, lambda env: env.root),
    "data": (t.SNAPSHOT, lambda env: env.data),
    "query": (t.QUERY, lambda env: env.query),
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One compiled expression (or a constant ``true``/``false``).

    ``fn`` is the fast form; ``noted_fn`` also records the values of its parts
    (compiled separately so the fast form pays nothing for explanations).

    ``counts`` is the rule's coverage: how often it evaluated to false, to true, and
    failed with an error (indexes ``FALSE``, ``TRUE``, ``ERROR``; the ruleset adds to it
    where it evaluates the rule, so a bool outcome indexes it directly). Each compile
    makes new counters: redeployed rules start from zero."""

    source: str
    fn: Fn
    noted_fn: Fn | None = None
    counts: list[int] = field(default_factory=lambda: [0, 0, 0], compare=False)

    def evaluate(self, env: Env) -> tuple[bool, str | None]:
        """``(allowed, error)``; a runtime error gives ``(False, message)``."""
        try:
            return self.fn(env) is True, None
        except EvalError as exc:
            return False, str(exc)

    def explain(self, env: Env) -> tuple[bool, str | None, list[tuple[str, Any]]]:
        """Like :meth:`evaluate`, plus the values the rule looked at, in order."""
        env.notes = []
        fn = self.noted_fn or self.fn
        try:
            try:
                return fn(env) is True, None, env.notes
            except EvalError as exc:
                return False, str(exc), env.notes
        finally:
            env.notes = None


def constant_rule(value: bool) -> CompiledRule:
    return CompiledRule("true" if value else "false", lambda env: value)


def compile_rule(source: str, *, captures: tuple[str, ...], write: bool) -> CompiledRule:
    """Parse and type-check ``source``; it must be a boolean expression."""
    try:
        tree = parse(source)
        typ, noted = _Compiler(captures, write, noting=True).expr(tree)
        _, fn = _Compiler(captures, write, noting=False).expr(tree)
    except RecursionError:
        raise ExpressionError("Expression is nested too deeply", 0) from None
    if typ != t.BOOLEAN:
        raise ExpressionError(f"Expression must be a boolean, not {t.describe(typ)}", tree_offset(tree))
    return CompiledRule(source, fn, noted)


def tree_offset(e: s.Expr) -> int:
    """The first character of an expression (the offset of its leftmost part)."""
    while isinstance(e, (s.Member, s.Index, s.Call, s.Binary, s.Logical, s.Conditional)):
        if isinstance(e, (s.Member, s.Index)):
            e = e.obj
        elif isinstance(e, s.Call):
            e = e.callee
        elif isinstance(e, (s.Binary, s.Logical)):
            e = e.left
        else:
            e = e.test
    return e.offset


def _check(typ: t.Type, allowed: frozenset[str], message: str, at: int, *, strict: bool = False) -> None:
    """``typ`` must be one of ``allowed``; fuzzy types pass unless ``strict``."""
    if isinstance(typ, str) and (typ in allowed or (not strict and typ in t.FUZZY)):
        return
    raise ExpressionError(message.format(t.describe(typ)), at)


class _Compiler:
    def __init__(self, captures: tuple[str, ...], write: bool, *, noting: bool = True) -> None:
        self.captures = captures
        self.write = write
        self.noting = noting
        self.depth = 0

    def expr(self, e: s.Expr) -> Typed:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"Expression is nested more than {MAX_DEPTH} levels deep", tree_offset(e))
        method = getattr(self, "_" + type(e).__name__.lower())
        typ, fn = method(e)
        self.depth -= 1
        if self.noting and isinstance(e, (s.Name, s.Member, s.Index, s.Call)) and isinstance(typ, str) \
                and typ not in _UNNOTED:
            fn = _noted(s.render(e), fn)
        return typ, fn

    def _literal(self, e: s.Literal) -> Typed:
        v = e.value
        if v is None:
            return t.NULL, lambda env: None
        if isinstance(v, bool):
            return t.BOOLEAN, lambda env: v
        if isinstance(v, str):
            return t.STRING, lambda env: v
        return t.NUMBER, lambda env: v

    def _regexliteral(self, e: s.RegexLiteral) -> Typed:
        regex = compile_regex(e.pattern, e.flags, e.offset)
        return t.REGEXP, lambda env: regex

    def _arrayliteral(self, e: s.ArrayLiteral) -> Typed:
        fns = [self.expr(x)[1] for x in e.elements]
        return t.ARRAY, lambda env: [f(env) for f in fns]

    def _name(self, e: s.Name) -> Typed:
        name = e.name
        if name in _VARIABLES:
            return _VARIABLES[name]
        if name == "newData":
            if not self.write:
                raise ExpressionError('Unknown variable "newData" (it exists only in .write and .validate)', e.offset)
            return t.SNAPSHOT, lambda env: env.new_data
        if name.startswith("$"):
            if name not in self.captures:
                raise ExpressionError(f'Unknown variable "{name}" (no such $location above this rule)', e.offset)
            return t.STRING, lambda env: env.captures[name]
        raise ExpressionError(f'Unknown variable "{name}"', e.offset)

    def _member_type(self, obj_type: t.Type, name: object, at: int) -> t.Type:
        table = t.MEMBER_TABLES.get(obj_type) if isinstance(obj_type, str) else None
        member = table.get(name) if table is not None and isinstance(name, str) else None
        if member is None:
            raise ExpressionError(f"No such method or property {name!r} on {t.describe(obj_type)}", at)
        return member

    def _member(self, e: s.Member) -> Typed:
        obj_type, obj = self.expr(e.obj)
        name = e.name
        if obj_type == t.ANY:
            prop = ops.property_of(name)
            return t.ANY, lambda env: prop(obj(env))
        return self._typed_member(obj_type, obj, name, e.offset)

    def _typed_member(self, obj_type: t.Type, obj: Fn, name: object, at: int) -> Typed:
        member = self._member_type(obj_type, name, at)
        if isinstance(member, t.Method):
            return member, _uncalled(member)
        if obj_type == t.QUERY:
            key = str(name)
            return member, lambda env: obj(env)[key]
        length = ops.property_of("length")  # string .length
        return member, lambda env: length(obj(env))

    def _index(self, e: s.Index) -> Typed:
        obj_type, obj = self.expr(e.obj)
        if obj_type == t.ANY:
            key = self.expr(e.key)[1]
            return t.ANY, lambda env: ops.get_property(obj(env), key(env))
        if not isinstance(obj_type, str) or obj_type not in t.MEMBER_TABLES:
            raise ExpressionError(f"No such method or property on {t.describe(obj_type)}", e.offset)
        if not isinstance(e.key, s.Literal):
            raise ExpressionError("Invalid property access: only a literal may be used inside [ ]", e.key.offset)
        return self._typed_member(obj_type, obj, e.key.value, e.offset)

    def _call(self, e: s.Call) -> Typed:
        callee = e.callee
        if not isinstance(callee, (s.Member, s.Index)):
            raise ExpressionError("Function call on a target that is not a method", e.offset)
        obj_type, obj = self.expr(callee.obj)
        if isinstance(callee, s.Member):
            name: object = callee.name
        elif isinstance(callee.key, s.Literal):
            name = callee.key.value
        else:
            raise ExpressionError("Invalid property access: only a literal may be used inside [ ]", callee.key.offset)
        if obj_type == t.ANY:
            obj_type = t.STRING  # a method of an unknown value can only be a string method
        method = self._member_type(obj_type, name, callee.offset)
        if not isinstance(method, t.Method):
            raise ExpressionError(f"{name!r} is not a method", e.offset)
        args = self._arguments(method, e)
        if method.owner == t.SNAPSHOT:
            loc = None if self.noting else locate(callee.obj)
            names = _literal_names(e.args)
            fast = None if loc is None or (e.args and names is None) else located_call(loc, method.name, names)
            return method.returns, fast or _snapshot_call(method.name, obj, args)
        return method.returns, _string_call(method.name, obj, args)

    def _arguments(self, method: t.Method, e: s.Call) -> list[Fn]:
        if method.args is None:  # hasChildren() or hasChildren([...])
            if not e.args:
                return []
            if len(e.args) > 1 or not isinstance(e.args[0], s.ArrayLiteral):
                raise ExpressionError("hasChildren takes one argument: an array literal of strings", e.offset)
            if not e.args[0].elements:
                raise ExpressionError("hasChildren needs a non-empty array", e.args[0].offset)
            for item in e.args[0].elements:
                _check(self.expr(item)[0], frozenset({t.STRING}), "hasChildren needs strings, not {}", item.offset)
            return [self.expr(e.args[0])[1]]
        if len(e.args) != len(method.args):
            raise ExpressionError(
                f"{method.name}() expects {len(method.args)} argument(s), got {len(e.args)}", e.offset
            )
        fns: list[Fn] = []
        for i, (arg, expected) in enumerate(zip(e.args, method.args)):
            if expected == t.REGEXP and not isinstance(arg, s.RegexLiteral):
                raise ExpressionError(f"{method.name}() needs a regular expression literal /…/", arg.offset)
            arg_type, fn = self.expr(arg)
            _check(
                arg_type,
                frozenset({expected}),
                f"{method.name}() argument {i + 1} must be {expected}, not {{}}",
                arg.offset,
            )
            fns.append(fn)
        return fns

    def _unary(self, e: s.Unary) -> Typed:
        typ, fn = self.expr(e.operand)
        if e.op == "!":
            _check(typ, frozenset({t.BOOLEAN}), "! needs a boolean, not {}", e.offset, strict=True)
            return t.BOOLEAN, lambda env: not fn(env)
        _check(typ, t.ARITHMETIC, "unary - needs a number, not {}", e.offset)
        return t.NUMBER, lambda env: ops.negate(fn(env))

    def _binary(self, e: s.Binary) -> Typed:
        lt, lf = self.expr(e.left)
        rt, rf = self.expr(e.right)
        op = e.op
        if op == "+":
            self._operands(lt, rt, t.ADDITION, e)
            if lt == t.STRING or rt == t.STRING:
                result: t.Type = t.STRING
            elif lt == t.NUMBER and rt == t.NUMBER:
                result = t.NUMBER
            else:
                result = t.PRIMITIVE
            return result, lambda env: ops.add(lf(env), rf(env))
        if op in ("-", "*", "/", "%"):
            self._operands(lt, rt, t.ARITHMETIC, e)
            return t.NUMBER, lambda env: ops.arithmetic(op, lf(env), rf(env))
        if op in ("==", "==="):
            self._operands(lt, rt, t.EQUALITY, e)
            return t.BOOLEAN, _applied(ops.equals, e, lf, rf)
        if op in ("!=", "!=="):
            self._operands(lt, rt, t.EQUALITY, e)
            return t.BOOLEAN, _applied(_differs, e, lf, rf)
        self._operands(lt, rt, t.ORDERING, e)
        if lt not in t.FUZZY and rt not in t.FUZZY and lt != rt:
            raise ExpressionError(f"{op} compares {t.describe(lt)} with {t.describe(rt)}", e.offset)
        return t.BOOLEAN, _applied(ops.comparison(op), e, lf, rf)

    def _operands(self, lt: t.Type, rt: t.Type, allowed: frozenset[str], e: s.Binary) -> None:
        _check(lt, allowed, f"Left operand of {e.op} cannot be {{}}", e.offset)
        _check(rt, allowed, f"Right operand of {e.op} cannot be {{}}", e.offset)

    def _logical(self, e: s.Logical) -> Typed:
        lt, lf = self.expr(e.left)
        rt, rf = self.expr(e.right)
        msg = f"{{}} operand of {e.op} must be a boolean, not {{}}"
        _check(lt, frozenset({t.BOOLEAN}), msg.format("Left", "{}"), tree_offset(e.left), strict=True)
        _check(rt, frozenset({t.BOOLEAN}), msg.format("Right", "{}"), tree_offset(e.right), strict=True)
        if e.op == "&&":
            return t.BOOLEAN, lambda env: lf(env) and rf(env)
        return t.BOOLEAN, lambda env: lf(env) or rf(env)

    def _conditional(self, e: s.Conditional) -> Typed:
        ct, cf = self.expr(e.test)
        _check(
            ct,
            frozenset({t.BOOLEAN}),
            "The condition of ?: must be a boolean, not {}",
            tree_offset(e.test),
            strict=True,
        )
        at, af = self.expr(e.then)
        bt, bf = self.expr(e.otherwise)
        if at == bt:
            result = at
        elif at in t.PRIMITIVES and bt in t.PRIMITIVES:
            result = t.PRIMITIVE
        else:
            result = t.ANY
        return result, lambda env: af(env) if cf(env) is True else bf(env)


def _applied(f: Callable[[Any, Any], bool], e: s.Binary, lf: Fn, rf: Fn) -> Fn:
    """``f`` of both operands, left first; a literal operand is taken once, at load."""
    if isinstance(e.right, s.Literal):
        right = e.right.value
        return lambda env: f(lf(env), right)
    if isinstance(e.left, s.Literal):
        left = e.left.value
        return lambda env: f(left, rf(env))
    return lambda env: f(lf(env), rf(env))


def _differs(a: Any, b: Any) -> bool:
    return not ops.equals(a, b)


def _literal_names(args: tuple[s.Expr, ...]) -> list[str] | None:
    """The child names of ``hasChild('x')`` / ``hasChildren(['x', …])`` when all are literal."""
    if len(args) != 1:
        return None
    items = args[0].elements if isinstance(args[0], s.ArrayLiteral) else (args[0],)
    names = [x.value for x in items if isinstance(x, s.Literal) and isinstance(x.value, str)]
    return names if len(names) == len(items) else None


def _noted(label: str, fn: Fn) -> Fn:
    """``fn`` that also records its value when the rule is being explained."""

    def note(env: Env) -> Any:
        value = fn(env)
        if env.notes is not None:
            env.notes.append((label, value))
        return value

    return note


def _uncalled(method: t.Method) -> Fn:
    def fail(env: Env) -> Any:  # pragma: no cover - the type check refuses every use
        raise EvalError(f"{method.name} is a method and must be called")

    return fail


def _snapshot_call(name: str, obj: Fn, args: list[Fn]) -> Fn:
    if name == "child":
        return lambda env: _snap(obj(env)).child(args[0](env))
    if name == "hasChild":
        return lambda env: _snap(obj(env)).has_child(args[0](env))
    if name == "hasChildren":
        if args:
            return lambda env: _snap(obj(env)).has_children(args[0](env))
        return lambda env: _snap(obj(env)).has_children()
    attr = {
        "val": "val", "parent": "parent", "exists": "exists", "getPriority": "get_priority",
        "isNumber": "is_number", "isString": "is_string", "isBoolean": "is_boolean",
    }[name]  # fmt: skip
    return lambda env: getattr(_snap(obj(env)), attr)()


def _snap(v: Any) -> Snapshot:
    if not isinstance(v, Snapshot):  # pragma: no cover - guaranteed by the type check
        raise EvalError("not a snapshot")
    return v


def _string_call(name: str, obj: Fn, args: list[Fn]) -> Fn:
    def target(env: Env) -> str:
        v = obj(env)
        if not isinstance(v, str):
            raise EvalError(f"{name}() called on {ops.js_type(v)}, not on a string")
        return v

    def arg(env: Env, i: int) -> str:
        v = args[i](env)
        if not isinstance(v, str):
            raise EvalError(f"{name}() needs a string argument, got {ops.js_type(v)}")
        return v

    if name == "contains":
        return lambda env: arg(env, 0) in target(env)
    if name == "beginsWith":
        return lambda env: target(env).startswith(arg(env, 0))
    if name == "endsWith":
        return lambda env: target(env).endswith(arg(env, 0))
    if name == "replace":
        return lambda env: target(env).replace(arg(env, 0), arg(env, 1))
    if name == "toLowerCase":
        return lambda env: target(env).lower()
    if name == "toUpperCase":
        return lambda env: target(env).upper()
    return lambda env: args[0](env).matches(target(env))
