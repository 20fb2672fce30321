"""The lenient JSON reader of rules files."""

from __future__ import annotations

import pytest

from rtdb.rules import RulesError
from rtdb.rules.jsonc import parse


def test_comments_and_multiline_strings() -> None:
    doc = parse('// top\n{"a": /* x */ "one\ntwo", "b": [1, 2.5, -3e2, true, false, null]}\n/* end */')
    assert doc.value == {"a": "one\ntwo", "b": [1, 2.5, -300.0, True, False, None]}


def test_positions_of_values_keys_and_string_characters() -> None:
    doc = parse('{\n  "rules": {\n    ".read": "a\\"b c"\n  }\n}')
    assert doc.line_col(doc.offsets[("rules", ".read")]) == (3, 14)
    assert doc.line_col(doc.key_offsets[("rules", ".read")]) == (3, 5)
    # character 3 of the decoded string ('b') sits after the two-character escape
    assert doc.line_col(doc.string_char_offset(("rules", ".read"), 2)) == (3, 18)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,}', "1:9"),
        ('{"a" 1}', "1:6"),
        ("{'a': 1}", "1:2"),
        ('{"a": tru}', "1:7"),
        ('{"a": "x\\q"}', "1:9"),
        ('{"a": 1} x', "1:10"),
        ('{"a": "', "1:7"),
        ("", "1:1"),
    ],
)
def test_syntax_errors_name_line_and_column(text: str, where: str) -> None:
    with pytest.raises(RulesError) as info:
        parse(text)
    assert info.value.message.startswith(where + ": ")
