"""Tokenizer and Pratt parser for rule expressions (a small JavaScript subset).

The result is a :mod:`rtdb.rules.syntax` tree. Anything outside the subset
(statements, assignment, ``**``, bitwise operators, unary ``+``, object
literals, …) is refused here with the offset of the offending token.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtdb.rules import syntax as s
from rtdb.rules.errors import ExpressionError

_PUNCT = (
    "===", "!==", ">>>", "**", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "++", "--", "=>",
    "(", ")", "[", "]", ".", ",", "?", ":", "!", "-", "+", "*", "/", "%", "<", ">", "=", ";",
    "&", "|", "^", "~", "{", "}",
)  # fmt: skip
_UNSUPPORTED = {
    "**": "The ** operator is not supported",
    "=": "Assignment is not allowed in a rule",
    ";": "A rule must be a single expression",
    "++": "The ++ operator is not supported",
    "--": "The -- operator is not supported",
    "=>": "Functions are not supported",
    "{": "Object literals are not supported",
}
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_BINARY_BP = {
    "||": 4, "&&": 5,
    "==": 9, "!=": 9, "===": 9, "!==": 9,
    "<": 10, "<=": 10, ">": 10, ">=": 10,
    "+": 12, "-": 12,
    "*": 13, "/": 13, "%": 13,
}  # fmt: skip
MAX_NESTING = 200
_TERNARY_BP = 3
_UNARY_BP = 14
_POSTFIX_BP = 17


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num" | "str" | "name" | "regex" | "punct" | "eof"
    value: object
    offset: int
    flags: str = ""


def _is_ident_start(c: str) -> bool:
    return c.isalpha() or c in "_$"


def _is_ident_part(c: str) -> bool:
    return c.isalnum() or c in "_$"


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            tokens.append(Token("eof", None, n))
            return tokens
        c = src[i]
        start = i
        if _is_ident_start(c):
            while i < n and _is_ident_part(src[i]):
                i += 1
            tokens.append(Token("name", src[start:i], start))
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            i, value = _number(src, i)
            tokens.append(Token("num", value, start))
        elif c in "'\"":
            i, text = _string(src, i)
            tokens.append(Token("str", text, start))
        elif c == "/" and _regex_allowed(tokens):
            i, body, flags = _regex(src, i)
            tokens.append(Token("regex", body, start, flags))
        else:
            for p in _PUNCT:
                if src.startswith(p, i):
                    tokens.append(Token("punct", p, start))
                    i += len(p)
                    break
            else:
                raise ExpressionError(f"Unexpected character {c!r}", i)


def _regex_allowed(tokens: list[Token]) -> bool:
    if not tokens:
        return True
    last = tokens[-1]
    return last.kind == "punct" and last.value not in (")", "]")


def _number(src: str, i: int) -> tuple[int, int | float]:
    n = len(src)
    start = i
    if src.startswith(("0x", "0X"), i):
        i += 2
        while i < n and src[i] in "0123456789abcdefABCDEF":
            i += 1
        if i == start + 2:
            raise ExpressionError("Invalid number", start)
        value: int | float = int(src[start + 2 : i], 16)
    else:
        while i < n and src[i].isdigit():
            i += 1
        is_float = False
        if i < n and src[i] == ".":
            is_float = True
            i += 1
            while i < n and src[i].isdigit():
                i += 1
        if i < n and src[i] in "eE":
            j = i + 1
            if j < n and src[j] in "+-":
                j += 1
            if j < n and src[j].isdigit():
                is_float = True
                i = j
                while i < n and src[i].isdigit():
                    i += 1
        raw = src[start:i]
        value = float(raw) if is_float else int(raw)
    if i < n and _is_ident_part(src[i]):
        raise ExpressionError("Invalid number", start)
    return i, value


def _string(src: str, i: int) -> tuple[int, str]:
    quote = src[i]
    start = i
    i += 1
    out: list[str] = []
    n = len(src)
    while True:
        if i >= n or src[i] == "\n":
            raise ExpressionError("Unterminated string", start)
        c = src[i]
        if c == quote:
            return i + 1, "".join(out)
        if c == "\\":
            if i + 1 >= n:
                raise ExpressionError("Unterminated string", start)
            e = src[i + 1]
            if e in "xu":
                width = 2 if e == "x" else 4
                digits = src[i + 2 : i + 2 + width]
                if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise ExpressionError("Invalid escape sequence", i)
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            out.append(_STRING_ESCAPES.get(e, e))
            i += 2
            continue
        out.append(c)
        i += 1


def _regex(src: str, i: int) -> tuple[int, str, str]:
    start = i
    i += 1
    n = len(src)
    in_class = False
    while True:
        if i >= n or src[i] == "\n":
            raise ExpressionError("Unterminated regular expression", start)
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            break
        i += 1
    body = src[start + 1 : i]
    i += 1
    f = i
    while i < n and _is_ident_part(src[i]):
        i += 1
    if not body:
        raise ExpressionError("Empty regular expression", start)
    return i, body, src[f:i]


def parse(src: str) -> s.Expr:
    """Parse one rule expression. Raises :class:`ExpressionError`."""
    parser = _Parser(tokenize(src))
    expr = parser.expression(0)
    tok = parser.peek()
    if tok.kind != "eof":
        parser.unexpected(tok)
    return expr


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def unexpected(self, tok: Token) -> None:
        if tok.kind == "eof":
            raise ExpressionError("Unexpected end of expression", tok.offset)
        if tok.kind == "punct" and tok.value in _UNSUPPORTED:
            raise ExpressionError(_UNSUPPORTED[str(tok.value)], tok.offset)
        shown = tok.value if tok.kind != "str" else repr(tok.value)
        raise ExpressionError(f"Unexpected token {shown}", tok.offset)

    def expect(self, punct: str) -> Token:
        tok = self.next()
        if tok.kind != "punct" or tok.value != punct:
            if tok.kind == "eof":
                raise ExpressionError(f"Expected '{punct}'", tok.offset)
            self.unexpected(tok)
        return tok

    def expression(self, rbp: int) -> s.Expr:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(f"Expression is nested more than {MAX_NESTING} levels deep", self.peek().offset)
        try:
            return self._expression(rbp)
        finally:
            self.depth -= 1

    def _expression(self, rbp: int) -> s.Expr:
        left = self.prefix(self.next())
        while True:
            tok = self.peek()
            if tok.kind != "punct":
                return left
            op = str(tok.value)
            if op in (".", "[", "("):
                lbp = _POSTFIX_BP
            elif op == "?":
                lbp = _TERNARY_BP
            else:
                lbp = _BINARY_BP.get(op, 0)
            if lbp <= rbp:
                return left
            self.next()
            left = self.infix(op, tok, left)

    def prefix(self, tok: Token) -> s.Expr:
        if tok.kind in ("num", "str"):
            return s.Literal(tok.value, tok.offset)  # type: ignore[arg-type]
        if tok.kind == "regex":
            return s.RegexLiteral(str(tok.value), tok.flags, tok.offset)
        if tok.kind == "name":
            word = str(tok.value)
            if word in ("true", "false"):
                return s.Literal(word == "true", tok.offset)
            if word == "null":
                return s.Literal(None, tok.offset)
            return s.Name(word, tok.offset)
        if tok.kind == "punct":
            if tok.value == "(":
                inner = self.expression(0)
                self.expect(")")
                return inner
            if tok.value == "[":
                return self.array(tok)
            if tok.value in ("!", "-"):
                return s.Unary(str(tok.value), self.expression(_UNARY_BP), tok.offset)
            if tok.value in ("+", "~"):
                raise ExpressionError(f"The unary {tok.value} operator is not supported", tok.offset)
        self.unexpected(tok)
        raise AssertionError  # pragma: no cover

    def array(self, open_tok: Token) -> s.Expr:
        items: list[s.Expr] = []
        if self.peek().kind == "punct" and self.peek().value == "]":
            self.next()
            return s.ArrayLiteral((), open_tok.offset)
        while True:
            items.append(self.expression(0))
            tok = self.next()
            if tok.kind == "punct" and tok.value == "]":
                return s.ArrayLiteral(tuple(items), open_tok.offset)
            if not (tok.kind == "punct" and tok.value == ","):
                self.unexpected(tok)

    def infix(self, op: str, tok: Token, left: s.Expr) -> s.Expr:
        if op == ".":
            name = self.next()
            if name.kind != "name":
                self.unexpected(name)
            return s.Member(left, str(name.value), tok.offset)
        if op == "[":
            key = self.expression(0)
            self.expect("]")
            return s.Index(left, key, tok.offset)
        if op == "(":
            args: list[s.Expr] = []
            if self.peek().kind == "punct" and self.peek().value == ")":
                self.next()
            else:
                while True:
                    args.append(self.expression(0))
                    sep = self.next()
                    if sep.kind == "punct" and sep.value == ")":
                        break
                    if not (sep.kind == "punct" and sep.value == ","):
                        self.unexpected(sep)
            return s.Call(left, tuple(args), tok.offset)
        if op == "?":
            then = self.expression(0)
            self.expect(":")
            otherwise = self.expression(_TERNARY_BP - 1)
            return s.Conditional(left, then, otherwise, tok.offset)
        right = self.expression(_BINARY_BP[op])
        if op in ("&&", "||"):
            return s.Logical(op, left, right, tok.offset)
        return s.Binary(op, left, right, tok.offset)
