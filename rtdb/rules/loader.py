"""Load a rules file: lenient JSON → checked structure → a frozen tree of
compiled rules. Every error names the rule path and the line and column."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rtdb.core.path import is_valid_key
from rtdb.rules import jsonc
from rtdb.rules.compiler import CompiledRule, compile_rule, constant_rule
from rtdb.rules.errors import ExpressionError, RulesError

RULE_TYPES = (".read", ".write", ".validate", ".indexOn")


@dataclass(frozen=True, eq=False)
class RuleNode:
    """The rules at one level of the rules tree."""

    keys: tuple[str, ...]  # the rules keys from the root, e.g. ("users", "$uid")
    read: CompiledRule | None = None
    write: CompiledRule | None = None
    validate: CompiledRule | None = None
    index_on: tuple[str, ...] = ()
    children: Mapping[str, RuleNode] = field(default_factory=lambda: MappingProxyType({}))
    wildcard: RuleNode | None = None
    validates_below: bool = False  # some descendant has a .validate

    @property
    def name(self) -> str:
        return self.keys[-1] if self.keys else ""

    def rule_path(self, kind: str) -> str:
        return "/" + "/".join(("rules",) + self.keys + (kind,))

    def child(self, key: str) -> tuple[RuleNode, str | None] | None:
        """The rules for data key ``key``: a literal child first, else the wildcard
        (with the name it captures)."""
        found = self.children.get(key)
        if found is not None:
            return found, None
        if self.wildcard is not None:
            return self.wildcard, self.wildcard.name
        return None


def load(source: str) -> RuleNode:
    """Parse and compile a rules file. Raises :class:`RulesError` (the first in the file)."""
    root, errors = _load(source)
    if errors:
        raise errors[0]
    assert root is not None
    return root


def find_errors(source: str) -> list[RulesError]:
    """Every error in a rules file, in the order of the file (empty when it compiles). A file that
    is not JSON has one: where parsing stopped."""
    return sorted(_load(source)[1], key=lambda e: (e.line, e.column))


def _load(source: str) -> tuple[RuleNode | None, list[RulesError]]:
    try:
        doc = jsonc.parse(source)
    except RulesError as exc:
        return None, [exc]
    top = doc.value
    if not isinstance(top, dict):
        return None, [RulesError("Expected an object with a 'rules' property", line=1, column=1)]
    errors: list[RulesError] = []
    for key in top:
        if key != "rules":
            line, col = doc.line_col(doc.key_offsets[(key,)])
            errors.append(RulesError(f'Unexpected top-level key "{key}": only "rules" is allowed', line=line,
                                     column=col))
    if "rules" not in top:
        errors.append(RulesError("Expected 'rules' property", line=1, column=1))
        return None, errors
    loader = _Loader(doc, errors)
    try:
        root = loader.node(top["rules"], ("rules",), ())
    except RulesError as exc:
        errors.append(exc)
        return None, errors
    return root, errors


class _Loader:
    """Compiles the rules tree; an error in one rule or key is noted in ``errors`` and the rest of
    the file is still compiled, so that all its errors can be reported at once."""

    def __init__(self, doc: jsonc.Document, errors: list[RulesError]) -> None:
        self.doc = doc
        self.errors = errors

    def fail(self, message: str, json_path: jsonc.JsonPath, *, key: bool = False) -> None:
        offsets = self.doc.key_offsets if key else self.doc.offsets
        line, col = self.doc.line_col(offsets.get(json_path, 0))
        raise RulesError(message, rule_path="/" + "/".join(str(k) for k in json_path), line=line, column=col)

    def node(self, value: Any, json_path: tuple[str, ...], keys: tuple[str, ...]) -> RuleNode:
        if not isinstance(value, dict):
            self.fail(f"Rules must be an object, got {_json_type(value)}", json_path)
        captures = tuple(k for k in keys if k.startswith("$"))
        rules: dict[str, CompiledRule | None] = {".read": None, ".write": None, ".validate": None}
        index_on: tuple[str, ...] = ()
        children: dict[str, RuleNode] = {}
        wildcard: RuleNode | None = None
        for key, sub in value.items():
            try:
                wildcard = self._key(key, sub, json_path, keys, captures, rules, children, wildcard)
                if key == ".indexOn":
                    index_on = self.index_on(sub, json_path + (key,))
            except RulesError as exc:
                self.errors.append(exc)
        below = any(c.validate is not None or c.validates_below for c in children.values()) or (
            wildcard is not None and (wildcard.validate is not None or wildcard.validates_below)
        )
        return RuleNode(
            keys=keys,
            read=rules[".read"],
            write=rules[".write"],
            validate=rules[".validate"],
            index_on=index_on,
            children=MappingProxyType(children),
            wildcard=wildcard,
            validates_below=below,
        )

    def _key(self, key: str, sub: Any, json_path: tuple[str, ...], keys: tuple[str, ...],
             captures: tuple[str, ...], rules: dict[str, CompiledRule | None], children: dict[str, RuleNode],
             wildcard: RuleNode | None) -> RuleNode | None:
        """Compile one key of a rules object into ``rules`` or ``children``; the level's wildcard after it."""
        sub_path = json_path + (key,)
        if key.startswith("."):
            if key not in RULE_TYPES:
                self.fail(f"Unknown rule type {key}", sub_path, key=True)
            if key != ".indexOn":
                rules[key] = self.rule(key, sub, sub_path, captures)
        elif key.startswith("$"):
            if wildcard is not None:
                self.fail(f"Only one $wildcard is allowed per level: {wildcard.name} and {key}", sub_path, key=True)
            if key in captures:
                self.fail(f"The wildcard {key} is already used above this level", sub_path, key=True)
            if not is_valid_key(key[1:]) or "$" in key[1:]:
                self.fail(f"Invalid wildcard name {key}", sub_path, key=True)
            return self.node(sub, sub_path, keys + (key,))
        else:
            if not is_valid_key(key):
                self.fail(f'Invalid key "{key}" in rules', sub_path, key=True)
            children[key] = self.node(sub, sub_path, keys + (key,))
        return wildcard

    def rule(self, kind: str, value: Any, json_path: tuple[str, ...], captures: tuple[str, ...]) -> CompiledRule:
        if isinstance(value, bool):
            return constant_rule(value)
        if not isinstance(value, str):
            self.fail(f"{kind} must be a boolean or a string expression, got {_json_type(value)}", json_path)
        try:
            return compile_rule(value, captures=captures, write=kind != ".read")
        except ExpressionError as exc:
            offset = self.doc.string_char_offset(json_path, exc.offset)
            line, col = self.doc.line_col(offset)
            raise RulesError(exc.message, rule_path="/" + "/".join(json_path), line=line, column=col) from None

    def index_on(self, value: Any, json_path: tuple[str, ...]) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.fail(f".indexOn must be a string or an array of strings, got {_json_type(value)}", json_path)
        raise AssertionError  # pragma: no cover


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
