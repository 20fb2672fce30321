"""find_errors(): every error of a rules file at once, in file order; compile() raises the first."""

from __future__ import annotations

import pytest

from rtdb.rules import RulesError, Ruleset
from rtdb.rules.loader import find_errors

SEVERAL = """{
  "rules": {
    ".read": "foo",
    "users": {
      "$uid": {".write": "auth.uid === $uid && bar", ".validate": 3},
      "$other": {}
    },
    ".bogus": true,
    "ok": {".read": "auth != null"}
  },
  "extra": 1
}"""


def test_every_error_is_found_in_file_order() -> None:
    found = [(e.rule_path, e.line, e.reason) for e in find_errors(SEVERAL)]
    assert found == [
        ("/rules/.read", 3, 'Unknown variable "foo"'),
        ("/rules/users/$uid/.write", 5, 'Unknown variable "bar"'),
        ("/rules/users/$uid/.validate", 5, ".validate must be a boolean or a string expression, got number"),
        ("/rules/users/$other", 6, "Only one $wildcard is allowed per level: $uid and $other"),
        ("/rules/.bogus", 8, "Unknown rule type .bogus"),
        ("", 11, 'Unexpected top-level key "extra": only "rules" is allowed'),
    ]


def test_compile_raises_one_of_them() -> None:
    with pytest.raises(RulesError) as info:
        Ruleset.compile(SEVERAL)
    assert info.value.message in [e.message for e in find_errors(SEVERAL)]


def test_a_valid_file_has_no_errors() -> None:
    assert find_errors('{"rules": {".read": true, "a": {"$b": {".write": "$b === auth.uid"}}}}') == []


def test_a_file_that_is_not_json_has_one_error() -> None:
    errors = find_errors('{"rules": {".read": tru')
    assert len(errors) == 1 and errors[0].line == 1


def test_a_bad_nested_level_does_not_hide_its_siblings() -> None:
    errors = find_errors('{"rules": {"a": 3, "b": {".read": "nope"}, "c": [1]}}')
    assert [e.rule_path for e in errors] == ["/rules/a", "/rules/b/.read", "/rules/c"]
