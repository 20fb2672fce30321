"""A lenient JSON reader for rules files: ``//`` and ``/* */`` comments and
strings that span lines, with the source position of every value kept so
that errors can name a line and a column."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from rtdb.rules.errors import RulesError

JsonPath = tuple[str | int, ...]

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WS = " \t\r\n\ufeff"


@dataclass
class Document:
    """A parsed rules file: the value plus where each part of it came from."""

    text: str
    value: Any = None
    offsets: dict[JsonPath, int] = field(default_factory=dict)
    key_offsets: dict[JsonPath, int] = field(default_factory=dict)
    string_offsets: dict[JsonPath, list[int]] = field(default_factory=dict)
    _line_starts: list[int] = field(default_factory=list)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset in the text."""
        if not self._line_starts:
            self._line_starts = [0] + [i + 1 for i, c in enumerate(self.text) if c == "\n"]
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def string_char_offset(self, path: JsonPath, index: int) -> int:
        """Source offset of character ``index`` of the string value at ``path``."""
        chars = self.string_offsets.get(path)
        if not chars:
            return self.offsets.get(path, 0)
        if index >= len(chars):
            return chars[-1] + 1
        return chars[max(index, 0)]


def parse(text: str) -> Document:
    """Parse ``text``; raise :class:`RulesError` with line and column on bad syntax."""
    doc = Document(text)
    reader = _Reader(doc)
    reader.skip()
    doc.value = reader.value(())
    reader.skip()
    if reader.pos != len(text):
        reader.fail("Unexpected text after the JSON value")
    return doc


class _Reader:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.text = doc.text
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> None:
        line, col = self.doc.line_col(self.pos if at is None else at)
        raise RulesError(message, line=line, column=col)

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in _WS:
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    self.fail("Unterminated comment")
                self.pos = end + 2
            else:
                return

    def value(self, path: JsonPath) -> Any:
        if self.pos >= len(self.text):
            self.fail("Unexpected end of input")
        self.doc.offsets[path] = self.pos
        c = self.text[self.pos]
        if c == "{":
            return self.obj(path)
        if c == "[":
            return self.array(path)
        if c == '"':
            s, chars = self.string()
            self.doc.string_offsets[path] = chars
            return s
        for word, val in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return val
        return self.number()

    def obj(self, path: JsonPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.pos += 1
        self.skip()
        if self.peek() == "}":
            self.pos += 1
            return out
        while True:
            self.skip()
            if self.peek() != '"':
                self.fail("Expected a string key")
            key_at = self.pos
            key, _ = self.string()
            if key in out:
                self.fail(f'Duplicate key "{key}"', key_at)
            self.doc.key_offsets[path + (key,)] = key_at
            self.skip()
            if self.peek() != ":":
                self.fail("Expected ':'")
            self.pos += 1
            self.skip()
            out[key] = self.value(path + (key,))
            self.skip()
            c = self.peek()
            self.pos += 1
            if c == "}":
                return out
            if c != ",":
                self.fail("Expected ',' or '}'", self.pos - 1)

    def array(self, path: JsonPath) -> list[Any]:
        out: list[Any] = []
        self.pos += 1
        self.skip()
        if self.peek() == "]":
            self.pos += 1
            return out
        while True:
            self.skip()
            out.append(self.value(path + (len(out),)))
            self.skip()
            c = self.peek()
            self.pos += 1
            if c == "]":
                return out
            if c != ",":
                self.fail("Expected ',' or ']'", self.pos - 1)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def string(self) -> tuple[str, list[int]]:
        """A string literal; raw newlines are allowed (multi-line strings)."""
        text = self.text
        start = self.pos
        self.pos += 1
        out: list[str] = []
        where: list[int] = []
        while True:
            if self.pos >= len(text):
                self.fail("Unterminated string", start)
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out), where
            if c == "\\":
                at = self.pos
                esc = text[self.pos + 1 : self.pos + 2]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    self.pos += 2
                elif esc == "u":
                    digits = text[self.pos + 2 : self.pos + 6]
                    if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                        self.fail("Invalid \\u escape")
                    out.append(chr(int(digits, 16)))
                    self.pos += 6
                else:
                    self.fail("Invalid escape in string")
                where.append(at)
                continue
            if c < " " and c not in "\n\r\t":
                self.fail("Control character in string")
            out.append(c)
            where.append(self.pos)
            self.pos += 1

    def number(self) -> int | float:
        text = self.text
        start = self.pos
        n = len(text)
        if self.peek() == "-":
            self.pos += 1
        digits_at = self.pos
        while self.pos < n and text[self.pos].isdigit():
            self.pos += 1
        if self.pos == digits_at:
            self.fail("Unexpected character", start)
        is_float = False
        if self.peek() == ".":
            is_float = True
            self.pos += 1
            while self.pos < n and text[self.pos].isdigit():
                self.pos += 1
        if self.peek() in ("e", "E"):
            is_float = True
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            while self.pos < n and text[self.pos].isdigit():
                self.pos += 1
        raw = text[start : self.pos]
        try:
            return float(raw) if is_float else int(raw)
        except ValueError:
            self.fail(f"Invalid number {raw}", start)
            raise  # pragma: no cover
