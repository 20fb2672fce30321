"""Errors raised while loading rules, and the internal runtime error of evaluation."""

from __future__ import annotations

from rtdb.core.errors import RtdbError


class RulesError(RtdbError):
    """A rules file that cannot be loaded.

    The message names the rule path, then the line and column in the rules
    text, e.g. ``/rules/users/$uid/.write: 3:15: Unknown variable "foo"``.
    """

    code = "invalid_rules"

    def __init__(self, message: str, *, rule_path: str = "", line: int = 0, column: int = 0) -> None:
        where = f"{line}:{column}: " if line else ""
        prefix = f"{rule_path}: " if rule_path else ""
        super().__init__(f"{prefix}{where}{message}")
        self.rule_path = rule_path
        self.line = line
        self.column = column
        self.reason = message


class ExpressionError(Exception):
    """A compile-time problem inside one expression, at ``offset`` in its text.

    The ruleset turns it into a :class:`RulesError` with the file position.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class EvalError(Exception):
    """A runtime error inside a rule: the rule counts as false."""
