"""Tokens of the condition text, each with its line and column."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from journeys_engine.conditions.ast import Position
from journeys_engine.errors import ConditionError

__all__ = ["Kind", "Token", "tokenize"]


class Kind(StrEnum):
    """Token kinds."""

    IDENT = "a name"
    NUMBER = "a number"
    STRING = "a quoted string"
    LPAREN = "'('"
    RPAREN = "')'"
    LBRACK = "'['"
    RBRACK = "']'"
    DOT = "'.'"
    COMMA = "','"
    COLON = "':'"
    OP = "a comparison operator"
    END = "the end of the text"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, text as written, value (for strings and numbers), position."""

    kind: Kind
    text: str
    position: Position
    value: str | int | float | None = None

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Kind.END:
            return "the end of the text"
        return repr(self.text)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_QUOTES = {"'": "'", '"': '"', "\u2018": "\u2019", "\u201c": "\u201d"}
_PUNCT = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "[": Kind.LBRACK,
    "]": Kind.RBRACK,
    ".": Kind.DOT,
    ",": Kind.COMMA,
    ":": Kind.COLON,
}
_NUMBER = re.compile(r"-?(?:\d+\.\d+|\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("==", "!=", ">=", "<=", "=", ">", "<")


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an END token.

    Raises:
        ConditionError: an unterminated string or a character the language has no use for.
    """
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    n = len(text)
    while i < n:
        c = text[i]
        pos = Position(line, i - line_start + 1)
        if c == "\n":
            i += 1
            line += 1
            line_start = i
            continue
        if c.isspace():
            i += 1
            continue
        if c in _PUNCT:
            tokens.append(Token(_PUNCT[c], c, pos))
            i += 1
            continue
        if c in _QUOTES:
            start = i
            i, value = _string(text, i, pos)
            tokens.append(Token(Kind.STRING, text[start:i], pos, value))
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token(Kind.OP, op, pos))
            i += len(op)
            continue
        match = _NUMBER.match(text, i)
        if match is not None:
            raw = match.group()
            number: int | float = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
            tokens.append(Token(Kind.NUMBER, raw, pos, number))
            i = match.end()
            continue
        match = _IDENT.match(text, i)
        if match is not None:
            tokens.append(Token(Kind.IDENT, match.group(), pos))
            i = match.end()
            continue
        raise ConditionError(f"unexpected character {c!r}", line=pos.line, column=pos.column)
    tokens.append(Token(Kind.END, "", Position(line, n - line_start + 1)))
    return tokens


def _string(text: str, start: int, pos: Position) -> tuple[int, str]:
    """Reads a quoted string starting at ``start``; returns (index after it, its value)."""
    close = _QUOTES[text[start]]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            chars.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if c == close:
            return i + 1, "".join(chars)
        if c == "\n":
            break
        chars.append(c)
        i += 1
    raise ConditionError(
        f"unterminated string: expected a closing {close}", line=pos.line, column=pos.column
    )
