"""Rules coverage: which rules ran and what they gave, for the emulator's
``/.inspect/coverage`` report.

The ruleset counts as it decides (``CompiledRule.counts``: a list increment per rule
evaluated, nothing else), so coverage costs almost nothing when nobody looks; this
module only reads the counters. Counts are per compiled ruleset: they start at zero
when rules are deployed or reloaded, and namespaces with no rules of their own share
the server's ruleset and its counts. Admin callers bypass the rules and are not
counted. A rule is counted once per evaluation, as a whole expression (its
sub-expressions are not counted separately).
"""

from __future__ import annotations

import html

import msgspec

from rtdb.rules.compiler import ERROR, FALSE, TRUE
from rtdb.rules.ruleset import Ruleset


class RuleCoverage(msgspec.Struct, frozen=True, rename="camel"):
    """One rule: where it is, its expression, and how often it evaluated to true, to
    false, or failed with an error (an error denies, and is counted only as an error)."""

    rule_path: str  # e.g. "/rules/users/$uid/.write"
    expression: str
    evaluations: int
    true: int
    false: int
    errors: int


class Coverage(msgspec.Struct, frozen=True):
    """The report of one namespace: its rules in the file's order."""

    namespace: str
    rules: list[RuleCoverage]


def compute_coverage(namespace: str, ruleset: Ruleset) -> Coverage:
    found = []
    for rule_path, rule in ruleset.rules():
        false, true, errors = rule.counts[FALSE], rule.counts[TRUE], rule.counts[ERROR]
        found.append(RuleCoverage(rule_path, rule.source, false + true + errors, true, false, errors))
    return Coverage(namespace, found)


def render_html(coverage: Coverage) -> str:
    """A self-contained HTML page of the report; everything shown is escaped."""
    e = html.escape
    rows = []
    for r in coverage.rules:
        state = "unused" if r.evaluations == 0 else "error" if r.errors else "used"
        rows.append(
            f'<tr class="{state}"><td><code>{e(r.rule_path)}</code></td><td><code>{e(r.expression)}</code></td>'
            f"<td>{r.evaluations}</td><td>{r.true}</td><td>{r.false}</td><td>{r.errors}</td></tr>"
        )
    unused = sum(r.evaluations == 0 for r in coverage.rules)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>Rules coverage: {e(coverage.namespace)}</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "tr.unused{background:#fdd}tr.error{background:#ffd}tr.used{background:#dfd}</style></head><body>"
        f"<h1>Rules coverage: {e(coverage.namespace)}</h1>"
        f"<p>{len(coverage.rules)} rules, {unused} never evaluated. Counts start when the rules are deployed; "
        "admin requests bypass the rules and are not counted.</p>"
        "<table><tr><th>rule</th><th>expression</th><th>evaluations</th><th>true</th><th>false</th>"
        "<th>errors</th></tr>" + "".join(rows) + "</table></body></html>\n"
    )
