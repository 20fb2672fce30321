"""Rules coverage: each rule counts its true, false and error outcomes as the ruleset
decides; a new compile starts from zero; the report lists every rule in file order."""

from __future__ import annotations

from rtdb.core.value import normalize
from rtdb.rules import Ruleset
from rtdb.rules.coverage import RuleCoverage, compute_coverage, render_html
from rtdb.rules.simulate import MemoryView

RULES = """{
  "rules": {
    ".read": "auth != null",
    "users": {
      "$uid": {
        ".write": "auth.uid === $uid",
        ".validate": "newData.child('age').val() > 17"
      }
    },
    "never": {".read": true}
  }
}"""
ALICE = {"uid": "alice"}
VIEW = MemoryView(normalize({}))


def counts(ruleset: Ruleset) -> dict[str, tuple[int, int, int]]:
    """rule path → (true, false, errors)."""
    return {r.rule_path: (r.true, r.false, r.errors) for r in compute_coverage("ns", ruleset).rules}


def test_a_fresh_ruleset_lists_every_rule_in_file_order_with_no_evaluations() -> None:
    report = compute_coverage("ns", Ruleset.compile(RULES))
    assert [r.rule_path for r in report.rules] == [
        "/rules/.read", "/rules/users/$uid/.write", "/rules/users/$uid/.validate", "/rules/never/.read",
    ]
    assert report.rules[1].expression == "auth.uid === $uid"
    assert all(r.evaluations == 0 for r in report.rules)


def test_reads_count_true_and_false() -> None:
    ruleset = Ruleset.compile(RULES)
    assert ruleset.can_read(("x",), auth=ALICE, root=VIEW, now=0).allowed
    assert not ruleset.can_read(("x",), auth=None, root=VIEW, now=0).allowed
    assert ruleset.can_read(("x",), auth=ALICE, root=VIEW, now=0).allowed
    assert counts(ruleset)["/rules/.read"] == (2, 1, 0)


def test_writes_count_write_and_validate_outcomes() -> None:
    ruleset = Ruleset.compile(RULES)
    ok = ruleset.can_write(("users", "alice"), normalize({"age": 30}), auth=ALICE, root=VIEW, now=0)
    too_young = ruleset.can_write(("users", "alice"), normalize({"age": 3}), auth=ALICE, root=VIEW, now=0)
    other = ruleset.can_write(("users", "bob"), normalize({"age": 30}), auth=ALICE, root=VIEW, now=0)
    assert (ok.allowed, too_young.allowed, other.allowed) == (True, False, False)
    c = counts(ruleset)
    assert c["/rules/users/$uid/.write"] == (2, 1, 0)
    assert c["/rules/users/$uid/.validate"] == (1, 1, 0)
    assert c["/rules/never/.read"] == (0, 0, 0)


def test_a_runtime_error_counts_as_an_error_only() -> None:
    ruleset = Ruleset.compile('{"rules": {"s": {".write": "newData.val().contains(\'x\')"}}}')
    assert ruleset.can_write(("s",), "xy", auth=None, root=VIEW, now=0).allowed
    # contains() of a number is an error, which denies
    assert not ruleset.can_write(("s",), 5, auth=None, root=VIEW, now=0).allowed
    assert counts(ruleset)["/rules/s/.write"] == (1, 0, 1)


def test_explained_decisions_count_too() -> None:
    ruleset = Ruleset.compile(RULES)
    ruleset.can_read(("x",), auth=None, root=VIEW, now=0, explain=True)
    assert counts(ruleset)["/rules/.read"] == (0, 1, 0)


def test_open_write_rules_count_the_root_write_without_evaluating_it() -> None:
    ruleset = Ruleset.compile('{"rules": {".write": true}}')
    ruleset.can_write(("a",), 1, auth=None, root=VIEW, now=0)
    ruleset.can_update(("a",), {("x",): 1, ("y",): 2}, auth=None, root=VIEW, now=0)
    assert counts(ruleset)["/rules/.write"] == (3, 0, 0)


def test_a_new_compile_of_the_same_rules_starts_from_zero() -> None:
    first = Ruleset.compile(RULES)
    first.can_read(("x",), auth=ALICE, root=VIEW, now=0)
    assert counts(Ruleset.compile(RULES))["/rules/.read"] == (0, 0, 0)
    assert counts(first)["/rules/.read"] == (1, 0, 0)


def test_the_html_report_escapes_what_it_shows() -> None:
    ruleset = Ruleset.compile('{"rules": {"$k": {".read": "$k === \'<script>alert(1)</script>\'"}}}')
    page = render_html(compute_coverage("<b>ns</b>", ruleset))
    assert "<script>" not in page and "<b>ns" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;ns&lt;/b&gt;" in page


def test_the_report_encodes_with_camel_case_names() -> None:
    import msgspec

    entry = RuleCoverage("/rules/.read", "true", 3, 2, 1, 0)
    assert msgspec.json.decode(msgspec.json.encode(entry)) == {
        "rulePath": "/rules/.read", "expression": "true", "evaluations": 3, "true": 2, "false": 1, "errors": 0,
    }
