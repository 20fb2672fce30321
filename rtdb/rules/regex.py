"""The regular-expression subset of ``matches()``, compiled with RE2.

Firebase accepts a small grammar (the one targaryen recorded against the live
service): literals and ``\\``-escapes, ``.``, ``\\d \\D \\w \\W \\s \\S``, sets,
groups, alternation, the quantifiers ``* + ? {n} {n,} {n,m}``, ``^`` only as
the very first character and ``$`` only as the very last, and the single flag
``i``. A special character at the start of the pattern or of a group is a
literal; an empty alternative is refused. The pattern is parsed here and
rebuilt as an RE2 pattern with JavaScript's meaning of ``.`` and ``\\s``, so
matching takes linear time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from rtdb.rules.errors import ExpressionError

_JS_SPACE = r"\t\n\x0b\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}"
_OUTSIDE_SET = {
    "d": "[0-9]", "D": "[^0-9]",
    "w": "[0-9A-Za-z_]", "W": "[^0-9A-Za-z_]",
    "s": f"[{_JS_SPACE}]", "S": f"[^{_JS_SPACE}]",
}  # fmt: skip
_INSIDE_SET = {"d": "0-9", "D": r"\D", "w": "0-9A-Za-z_", "W": r"\W", "s": _JS_SPACE, "S": r"\S"}
_DOT = r"[^\n\r\x{2028}\x{2029}]"
_META = "|)?+}{*"  # a literal when first in the pattern or in a group
_MAX_REPEAT = 1000


def _literal(c: str) -> str:
    if c.isalnum() or c == "_":
        return c
    if ord(c) < 32 or c.isspace():
        return f"\\x{{{ord(c):x}}}"
    return "\\" + c if ord(c) < 128 else c


@dataclass(frozen=True)
class CompiledRegex:
    source: str
    flags: str
    search: Callable[[str], Any]

    def matches(self, text: str) -> bool:
        return self.search(text) is not None


def compile_regex(pattern: str, flags: str, offset: int = 0) -> CompiledRegex:
    """Check ``/pattern/flags`` against Firebase's subset and compile it with RE2."""
    if flags not in ("", "i"):
        raise ExpressionError(f"Unsupported regular expression flags {flags!r} (only 'i' is allowed)", offset)
    body = _RegexParser(pattern, offset).parse()
    try:
        compiled = re2.compile(("(?i)" if flags == "i" else "") + body)
    except re2.error:  # pragma: no cover - the parser only emits valid RE2
        raise ExpressionError(f"Invalid regular expression /{pattern}/", offset) from None
    return CompiledRegex(pattern, flags, compiled.search)


class _RegexParser:
    def __init__(self, src: str, offset: int) -> None:
        self.src = src
        self.pos = 0
        self.offset = offset
        self.stop = len(src)

    def fail(self, message: str) -> None:
        raise ExpressionError(f"Invalid regular expression /{self.src}/: {message}", self.offset)

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < self.stop else ""

    def parse(self) -> str:
        start = ""
        if self.peek() == "^":
            self.pos = 1
            start = "^"
        end = ""
        if self.src.endswith("$") and len(self.src) > self.pos and not self._escaped(len(self.src) - 1):
            self.stop -= 1
            end = "$"
        body = self.alternation(literal_start=not start)
        if self.pos != self.stop:
            self.fail(f"unexpected {self.peek()!r}")
        return start + body + end

    def _escaped(self, i: int) -> bool:
        n = 0
        while i - 1 - n >= 0 and self.src[i - 1 - n] == "\\":
            n += 1
        return n % 2 == 1

    def alternation(self, *, literal_start: bool) -> str:
        branches = [self.sequence(literal_start)]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence(False))
        return "|".join(branches)

    def sequence(self, literal_start: bool) -> str:
        parts: list[str] = []
        if literal_start and self.peek() and self.peek() in _META:
            parts.append(_literal(self.peek()))
            self.pos += 1
        while self.peek() and self.peek() not in "|)":
            atom = self.atom()
            parts.append(atom + self.quantifier())
        if not parts:
            self.fail("empty alternative")
        return "".join(parts)

    def atom(self) -> str:
        c = self.peek()
        if c == "(":
            self.pos += 1
            inner = self.alternation(literal_start=True)
            if self.peek() != ")":
                self.fail("missing )")
            self.pos += 1
            return f"(?:{inner})"
        if c == "[":
            return self.char_set()
        if c == "\\":
            if self.pos + 1 >= self.stop:
                self.fail("trailing backslash")
            e = self.src[self.pos + 1]
            self.pos += 2
            return _OUTSIDE_SET.get(e) or _literal(e)
        if c == ".":
            self.pos += 1
            return _DOT
        if c in "^$":
            self.fail(f"{c!r} is only allowed at the very start/end of the pattern")
        if c in "*+?{":
            self.fail(f"nothing to repeat before {c!r}")
        self.pos += 1
        return _literal(c)

    def quantifier(self) -> str:
        q = self._one_quantifier()
        if q and self.peek() == "?":
            self.pos += 1  # lazy: the same answer for a yes/no match
        if q and self.peek() and self.peek() in "*+?{":
            self.fail("nested quantifier")
        return q

    def _one_quantifier(self) -> str:
        c = self.peek()
        if c in ("*", "+", "?") and c:
            self.pos += 1
            return c
        if c != "{":
            return ""
        close = self.src.find("}", self.pos, self.stop)
        text = self.src[self.pos + 1 : close] if close >= 0 else ""
        lo, _, hi = text.partition(",")
        if close < 0 or not _is_count(lo) or (hi and not _is_count(hi)):
            self.fail("'{' must start a quantifier {n}, {n,} or {n,m}")
        if int(lo) > _MAX_REPEAT or (hi and int(hi) > _MAX_REPEAT):
            self.fail(f"repetition count above {_MAX_REPEAT}")
        if hi and int(hi) < int(lo):
            self.fail("numbers out of order in quantifier")
        self.pos = close + 1
        return "{" + text + "}"

    def char_set(self) -> str:
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        items: list[str] = []
        while self.peek() != "]":
            if not self.peek():
                self.fail("missing ]")
            first, klass = self._set_item()
            if klass:
                items.append(klass)
                continue
            if self.peek() == "-" and self.pos + 1 < self.stop and self.src[self.pos + 1] != "]":
                self.pos += 1
                last, klass = self._set_item()
                if klass:
                    self.fail("a character class cannot end a range")
                if ord(last) < ord(first):
                    self.fail("range out of order in character set")
                items.append(f"{_literal(first)}-{_literal(last)}")
            else:
                items.append(_literal(first))
        self.pos += 1
        if not items:
            self.fail("empty character set")
        return "[" + ("^" if negate else "") + "".join(items) + "]"

    def _set_item(self) -> tuple[str, str]:
        """One set character, or ``("", class)`` for ``\\d`` and the like."""
        c = self.peek()
        if c == "\\":
            if self.pos + 1 >= self.stop:
                self.fail("trailing backslash")
            e = self.src[self.pos + 1]
            self.pos += 2
            return ("", _INSIDE_SET[e]) if e in _INSIDE_SET else (e, "")
        self.pos += 1
        return c, ""


def _is_count(text: str) -> bool:
    return text == "0" or (text[:1] in "123456789" and text.isdigit())
