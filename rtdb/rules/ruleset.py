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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rtdb.core import path as paths
from rtdb.core.query import QuerySpec
from rtdb.core.value import Node, children
from rtdb.rules.compiler import CompiledRule
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


@dataclass(frozen=True, slots=True)
class _Step:
    rules: RuleNode
    at: Path
    captures: dict[str, str]


class Ruleset:
    """Rules compiled once at load; evaluation never parses."""

    __slots__ = ("_root", "source")

    def __init__(self, source: str, root: RuleNode) -> None:
        self.source = source
        self._root = root

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

    def _chain(self, path: Path) -> Iterator[_Step]:
        """The rule nodes on the way from the root to ``path`` (stops where no rules match)."""
        node = self._root
        captures: dict[str, str] = {}
        yield _Step(node, (), captures)
        for depth, key in enumerate(path):
            found = node.child(key)
            if found is None:
                return
            node, captured = found
            if captured is not None:
                captures = {**captures, captured: key}
            yield _Step(node, path[: depth + 1], captures)

    def index_on(self, path: Path) -> tuple[str, ...]:
        """The ``.indexOn`` children declared for the concrete ``path``."""
        steps = list(self._chain(_as_path(path)))
        return steps[-1].rules.index_on if len(steps) == len(path) + 1 else ()

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

    # -- decisions ----------------------------------------------------------

    def can_read(
        self, path: Path, *, auth: dict[str, Any] | None, root: DataView, now: int, query: QuerySpec | None = None,
        explain: bool = False,
    ) -> Decision:
        """With ``explain`` the trace records every rule run and the values it looked at
        (costly: the engine asks only when a caller wants the explanation)."""
        path = _as_path(path)
        tree = Tree(root)
        root_snap = Snapshot(tree, ())
        qvars = query_variables(query) if query is not None else _NO_QUERY
        trace: list[str] = []
        for step in self._chain(path):
            rule = step.rules.read
            if rule is None:
                continue
            env = Env(
                auth=auth, now=now, root=root_snap, data=Snapshot(tree, step.at),
                new_data=None, query=qvars, captures=step.captures,
            )  # fmt: skip
            if _run(rule, env, step, ".read", trace if explain else None):
                trace.append(f"read of {paths.to_str(path)} allowed by {step.rules.rule_path('.read')}")
                return Decision(True, trace)
        trace.append(f"read of {paths.to_str(path)} denied: no .read rule on the way from / allowed it")
        return Decision(False, trace)

    def can_write(
        self, path: Path, new_node: Node, *, auth: dict[str, Any] | None, root: DataView, now: int,
        explain: bool = False,
    ) -> Decision:
        """A set of ``new_node`` (node form, server values resolved) at ``path``."""
        path = _as_path(path)
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
        return _Judgement(self, writes, auth, root, now, explain).run("update")


class _Judgement:
    """One write or update decision: shared trees, shared caches."""

    def __init__(
        self, ruleset: Ruleset, writes: list[tuple[Path, Node]], auth: dict[str, Any] | None, root: DataView,
        now: int, explain: bool = False,
    ) -> None:
        self.ruleset = ruleset
        self.writes = writes
        self.auth = auth
        self.now = now
        self.old = Tree(root)
        self.new = Overlay(self.old, writes)
        self.root_snap = Snapshot(self.old, ())
        self.validated: set[Path] = set()
        self.trace: list[str] = []
        self.notes: list[str] | None = self.trace if explain else None

    def env(self, step: _Step) -> Env:
        return Env(
            auth=self.auth, now=self.now, root=self.root_snap, data=Snapshot(self.old, step.at),
            new_data=Snapshot(self.new, step.at), query=_NO_QUERY, captures=step.captures,
        )  # fmt: skip

    def run(self, what: str) -> Decision:
        for target, _ in self.writes:
            if not self.check(target):
                self.trace.append(f"{what} denied at {paths.to_str(target)}")
                return Decision(False, self.trace)
        self.trace.append(f"{what} allowed")
        return Decision(True, self.trace)

    def check(self, target: Path) -> bool:
        chain = list(self.ruleset._chain(target))
        if not self.permitted(target, chain):
            return False
        for step in chain:
            rule = step.rules.validate
            if rule is None or step.at in self.validated:
                continue
            if not self.new.exists(step.at):
                break  # nothing below a missing node exists either: no more validation
            self.validated.add(step.at)
            if not _run(rule, self.env(step), step, ".validate", self.notes):
                return False
        last = chain[-1]
        if last.at != target or not last.rules.validates_below:
            return True
        return self.walk(last, self.new.node(target))

    def permitted(self, target: Path, chain: list[_Step]) -> bool:
        for step in chain:
            rule = step.rules.write
            if rule is not None and _run(rule, self.env(step), step, ".write", self.notes):
                return True
        self.trace.append(f"no .write rule on the way from / to {paths.to_str(target)} allowed it")
        return False

    def walk(self, step: _Step, node: Node) -> bool:
        """Validate the written value below ``step``, where new data exists."""
        for key, child in children(node).items():
            found = step.rules.child(key)
            if found is None:
                continue
            rules, captured = found
            captures = {**step.captures, captured: key} if captured is not None else step.captures
            sub = _Step(rules, step.at + (key,), captures)
            if rules.validate is not None and sub.at not in self.validated:
                self.validated.add(sub.at)
                if not _run(rules.validate, self.env(sub), sub, ".validate", self.notes):
                    return False
            if rules.validates_below and not self.walk(sub, child):
                return False
        return True


def _run(rule: CompiledRule, env: Env, step: _Step, kind: str, trace: list[str] | None) -> bool:
    if trace is None:
        return rule.evaluate(env)[0]
    ok, error, notes = rule.explain(env)
    where = step.rules.rule_path(kind)
    caps = "".join(f" {k}={v!r}" for k, v in step.captures.items())
    outcome = "true" if ok else f"false (error: {error})" if error else "false"
    line = f"{where} at {paths.to_str(step.at)}{caps}: {rule.source} → {outcome}"
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
