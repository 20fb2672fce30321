"""A compiled ruleset and the three decisions the engine asks of it.

* read: the first true ``.read`` from the root down to the path grants;
* write: the first true ``.write`` from the root down to the path grants, then
  every ``.validate`` where the new data exists must pass — on the path's
  ancestors and inside the written value;
* update: each updated path is judged as a write against one merged result;
  all must pass.

``newData`` is a lazy overlay of the pending writes over ``root``: only the
nodes a rule asks for are read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rtdb.core import path as paths
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, children
from rtdb.rules.compiler import ERROR, FALSE, TRUE, CompiledRule  # counts[0], [1], [2]
from rtdb.rules.errors import EvalError
from rtdb.rules.loader import RuleNode, load
from rtdb.rules.snapshot import DataView, ObjectValue, Overlay, Snapshot, Tree
from rtdb.rules.variables import Env, query_variables

Path = tuple[str, ...]
_NO_QUERY: dict[str, Any] = query_variables(None)


@dataclass
class Decision:
    """The answer, and the rules that produced it (in evaluation order)."""

    allowed: bool
    trace: list[str] = field(default_factory=list)


_Step = tuple[RuleNode, Path, dict[str, str]]  # the rules at a data location, with its captures


class Ruleset:
    """Rules compiled once at load; evaluation never parses."""

    __slots__ = ("_open_counts", "_open_writes", "_root", "source")

    def __init__(self, source: str, root: RuleNode) -> None:
        self.source = source
        self._root = root
        # `.write: true` at the root and no `.validate` anywhere: every write is allowed
        self._open_writes = (
            root.write is not None and root.write.source.strip() == "true"
            and root.validate is None and not root.validates_below
        )
        self._open_counts = root.write.counts if root.write is not None else [0, 0, 0]

    @classmethod
    def compile(cls, source: str) -> Ruleset:
        """Load a rules file (JSON with comments). Raises :class:`RulesError`."""
        return cls(source, load(source))

    @classmethod
    def open(cls) -> Ruleset:
        return cls.compile('{"rules": {".read": true, ".write": true}}')

    @classmethod
    def closed(cls) -> Ruleset:
        return cls.compile('{"rules": {}}')

    def __repr__(self) -> str:
        return f"Ruleset({self.source[:60]!r})"

    # -- matching -----------------------------------------------------------

    def _chain(self, path: Path) -> list[_Step]:
        """The rule nodes on the way from the root to ``path`` (stops where no rules match)."""
        node = self._root
        captures: dict[str, str] = {}
        chain: list[_Step] = [(node, (), captures)]
        for depth, key in enumerate(path, 1):  # RuleNode.child, inlined: this runs for every decision
            found = node.children.get(key)
            if found is None:
                found = node.wildcard
                if found is None:
                    break
                captures = {**captures, found.keys[-1]: key}
            node = found
            chain.append((node, path[:depth], captures))
        return chain

    def index_on(self, path: Path) -> tuple[str, ...]:
        """The ``.indexOn`` children declared for the concrete ``path``."""
        steps = self._chain(_as_path(path))
        return steps[-1][0].index_on if len(steps) == len(path) + 1 else ()

    def indexes(self) -> list[tuple[Path, tuple[str, ...]]]:
        """Every ``.indexOn`` declaration: ``(location pattern with $wildcards, children)``."""
        found: list[tuple[Path, tuple[str, ...]]] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.index_on:
                found.append((node.keys, node.index_on))
            stack.extend(node.children.values())
            if node.wildcard is not None:
                stack.append(node.wildcard)
        return found

    def rules(self) -> list[tuple[str, CompiledRule]]:
        """Every ``.read``/``.write``/``.validate`` with its rule path, in the file's order
        (a level's named children, then its wildcard)."""
        found: list[tuple[str, CompiledRule]] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            for kind, rule in ((".read", node.read), (".write", node.write), (".validate", node.validate)):
                if rule is not None:
                    found.append((node.rule_path(kind), rule))
            below = list(node.children.values()) + ([node.wildcard] if node.wildcard is not None else [])
            stack.extend(reversed(below))
        return found

    # -- decisions ----------------------------------------------------------

    def can_read(
        self, path: Path, *, auth: dict[str, Any] | None, root: DataView, now: int, query: QuerySpec | None = None,
        explain: bool = False,
    ) -> Decision:
        """With ``explain`` the trace records every rule run and the values it looked at
        (costly: the engine asks only when a caller wants the explanation)."""
        path = _as_path(path)
        tree = Tree(root)
        data = Snapshot(tree, ())
        qvars = query_variables(query) if query is not None else _NO_QUERY
        env = Env(auth=auth, now=now, root=Snapshot(tree, ()), data=data, new_data=None, query=qvars, captures={})
        trace: list[str] = []
        for step in self._chain(path):
            rules, at, captures = step
            rule = rules.read
            if rule is None:
                continue
            data.path = at
            env.captures = captures
            if _passes(rule, env) if not explain else _explained(rule, env, step, ".read", trace):
                trace.append(f"read of {paths.to_str(path)} allowed by {rules.rule_path('.read')}")
                return Decision(True, trace)
        trace.append(f"read of {paths.to_str(path)} denied: no .read rule on the way from / allowed it")
        return Decision(False, trace)

    def can_write(
        self, path: Path, new_node: Node, *, auth: dict[str, Any] | None, root: DataView, now: int,
        explain: bool = False,
    ) -> Decision:
        """A set of ``new_node`` (node form, server values resolved) at ``path``."""
        path = _as_path(path)
        if self._open_writes and not explain:
            self._open_counts[1] += 1  # the root .write, as evaluating it would count
            return Decision(True, ["write allowed by /rules/.write"])
        return _Judgement(self, [(path, new_node)], auth, root, now, explain).run("write")

    def can_update(
        self, path: Path, updates: Mapping[Path, Node], *, auth: dict[str, Any] | None, root: DataView, now: int,
        explain: bool = False,
    ) -> Decision:
        """A multi-path update: ``updates`` maps paths relative to ``path`` to nodes."""
        base = _as_path(path)
        writes = [(base + _as_path(rel), node) for rel, node in updates.items()]
        if not writes:
            return Decision(True, [f"empty update at {paths.to_str(base)}: nothing to check"])
        if self._open_writes and not explain:
            self._open_counts[1] += len(writes)  # the root .write, once per updated path
            return Decision(True, ["update allowed by /rules/.write"])
        return _Judgement(self, writes, auth, root, now, explain).run("update")


class _Judgement:
    """One write or update decision: shared trees, shared caches, one :class:`Env`
    whose ``data``/``newData`` snapshots are pointed at each rule's location."""

    def __init__(
        self, ruleset: Ruleset, writes: list[tuple[Path, Node]], auth: dict[str, Any] | None, root: DataView,
        now: int, explain: bool = False,
    ) -> None:
        self.ruleset = ruleset
        self.writes = writes
        self.old = Tree(root)
        self.new = Overlay(self.old, writes)
        self.data = Snapshot(self.old, ())
        self.new_data = Snapshot(self.new, ())
        self.env = Env(
            auth=auth, now=now, root=Snapshot(self.old, ()), data=self.data, new_data=self.new_data,
            query=_NO_QUERY, captures={},
        )  # fmt: skip
        # one write validates each location once anyway: its chain and its value do not overlap
        self.validated: set[Path] | None = set() if len(writes) > 1 else None
        self.trace: list[str] = []
        self.explain = explain

    def passes(self, rule: CompiledRule, step: _Step, kind: str) -> bool:
        self.data.path = self.new_data.path = step[1]
        self.env.captures = step[2]
        if self.explain:
            return _explained(rule, self.env, step, kind, self.trace)
        try:  # _passes, inlined
            if rule.fn(self.env) is True:
                rule.counts[1] += 1  # TRUE (a constant index: the cheapest increment)
                return True
        except EvalError:
            rule.counts[ERROR] += 1
            return False
        rule.counts[0] += 1  # FALSE
        return False

    def first_time(self, at: Path) -> bool:
        """Whether ``at`` is still to be validated (and it is from now on)."""
        if self.validated is None:
            return True
        if at in self.validated:
            return False
        self.validated.add(at)
        return True

    def run(self, what: str) -> Decision:
        for target, _ in self.writes:
            if not self.check(target):
                self.trace.append(f"{what} denied at {paths.to_str(target)}")
                return Decision(False, self.trace)
        self.trace.append(f"{what} allowed")
        return Decision(True, self.trace)

    def check(self, target: Path) -> bool:
        chain = self.ruleset._chain(target)
        if not self.permitted(target, chain):
            return False
        if self.validated is None:  # a single write: its value is the new data at the target
            self.new.known(target, self.writes[0][1])
        for step in chain:
            rule = step[0].validate
            if rule is None or (self.validated is not None and step[1] in self.validated):
                continue
            if not self.new.exists(step[1]):
                break  # nothing below a missing node exists either: no more validation
            self.first_time(step[1])
            if not self.passes(rule, step, ".validate"):
                return False
        rules, at, _ = chain[-1]
        if at != target or not rules.validates_below:
            return True
        return self.walk(chain[-1], self.new.node(target))

    def permitted(self, target: Path, chain: list[_Step]) -> bool:
        for step in chain:
            rule = step[0].write
            if rule is not None and self.passes(rule, step, ".write"):
                return True
        self.trace.append(f"no .write rule on the way from / to {paths.to_str(target)} allowed it")
        return False

    def walk(self, step: _Step, node: Node) -> bool:
        """Validate the written value below ``step``, where new data exists."""
        rules_here, at, captures_here = step
        named, wildcard = rules_here.children, rules_here.wildcard
        for key, child in children(node).items():
            rules = named.get(key)  # RuleNode.child, inlined
            captures = captures_here
            if rules is None:
                if wildcard is None:
                    continue
                rules = wildcard
                captures = {**captures_here, wildcard.keys[-1]: key}
            sub = (rules, at + (key,), captures)
            if rules.validate is not None and self.first_time(sub[1]):
                self.new.known(sub[1], child)
                if not self.passes(rules.validate, sub, ".validate"):
                    return False
            if rules.validates_below and not self.walk(sub, child):
                return False
        return True


def _passes(rule: CompiledRule, env: Env) -> bool:
    """The fast form: a runtime error makes the rule false. Counts the outcome (coverage)."""
    try:
        if rule.fn(env) is True:
            rule.counts[1] += 1  # TRUE (a constant index: the cheapest increment)
            return True
    except EvalError:
        rule.counts[ERROR] += 1
        return False
    rule.counts[0] += 1  # FALSE
    return False


_uncounted = threading.local()


@contextmanager
def uncounted() -> Iterator[None]:
    """Evaluations inside (in this thread) leave the rules' coverage counts alone: a denial
    evaluated again for its trace was counted once already."""
    _uncounted.on = True
    try:
        yield
    finally:
        _uncounted.on = False


def _explained(rule: CompiledRule, env: Env, step: _Step, kind: str, trace: list[str]) -> bool:
    """The explaining form: the rule, where it ran, its outcome and the values it saw."""
    rules, at, captures = step
    ok, error, notes = rule.explain(env)
    if not getattr(_uncounted, "on", False):
        rule.counts[ERROR if error else TRUE if ok else FALSE] += 1
    where = rules.rule_path(kind)
    caps = "".join(f" {k}={v!r}" for k, v in captures.items())
    outcome = "true" if ok else f"false (error: {error})" if error else "false"
    line = f"{where} at {paths.to_str(at)}{caps}: {rule.source} → {outcome}"
    seen: dict[str, str] = {}
    for label, value in notes:
        seen.setdefault(label, _show(value))
    if seen:
        line += " [" + ", ".join(f"{k} = {v}" for k, v in seen.items()) + "]"
    trace.append(line)
    return ok


def _show(value: Any) -> str:
    """A short rendering of a value a rule looked at."""
    if isinstance(value, ObjectValue):
        return "<object>"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_path(p: Any) -> Path:
    if isinstance(p, str):
        return tuple(k for k in p.split("/") if k)
    return tuple(p)
