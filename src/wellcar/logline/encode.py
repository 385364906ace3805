"""How one value is written into a log line, and read back.

A logfmt value is bare when it is a plain token, else a double-quoted string whose escapes
are JSON's (``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``, ``\\u00NN``). JSON's escapes
because the logfmt readers operators use (go-logfmt in Loki, Vector, Grafana) decode
exactly those, and because a quoted value is then also a valid JSON string. Every control
character (C0, DEL, C1: ESC and CSI included), line and paragraph separators, format
characters (bidi overrides, zero-width) and lone surrogates are escaped, so no value can
end a line, forge a field or drive a terminal.
"""

from __future__ import annotations

import json
import re
import unicodedata

MAX_VALUE_CHARS = 1024  # a field value; longer ones are cut with a marker
MAX_MESSAGE_CHARS = 4096  # msg (third-party messages can carry anything)
MAX_TRACE_CHARS = 16384  # exc: a traceback
TRUNCATED = "...[truncated: {total} chars]"

_BARE = re.compile(r"[A-Za-z0-9_.:/@+,%-]+")
# Everything outside printable ASCII minus the two characters a quoted value must escape;
# a match is then looked at one character at a time (only non-ASCII text pays for it).
_NEEDS_LOOK = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters plus a marker saying how long it was."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(total=len(text))


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0xA0 or unicodedata.category(char) in _ESCAPED_CATEGORIES:
        if code > 0xFFFF:  # JSON spells astral characters as a surrogate pair
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    return char


def _escape_unsafe(match: re.Match[str]) -> str:
    char = match.group()
    return char if char in '"\\' else _escape_char(match)


def visible(text: str) -> str:
    """``text`` safe to show on a terminal: what ``quote`` escapes, escaped the same way,
    without quotes and with quotes and backslashes left as they are."""
    return _NEEDS_LOOK.sub(_escape_unsafe, text)


def quote(text: str) -> str:
    """``text`` as a double-quoted string with JSON escapes (no length limit)."""
    return '"' + _NEEDS_LOOK.sub(_escape_char, text) + '"'


def logfmt_value(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """One logfmt value: numbers and plain tokens bare, everything else quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, int | float) else clip(str(value), limit)
    return text if _BARE.fullmatch(text) else quote(text)


class LogfmtSyntaxError(ValueError):
    """A line is not the logfmt this module writes."""


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def parse_logfmt(line: str) -> dict[str, str]:
    """The fields of one logfmt line, values unescaped (the inverse of the formatter).

    Strict on purpose: it is how tests and tools prove that a line holds exactly the
    fields that were written, so a repeated key, a stray quote or a broken escape is an error.
    """
    result: dict[str, str] = {}
    pos, end = 0, len(line)
    while pos < end:
        if line[pos] == " ":
            pos += 1
            continue
        key_match = _KEY.match(line, pos)
        if key_match is None or key_match.end() >= end or line[key_match.end()] != "=":
            raise LogfmtSyntaxError(f"expected key= at column {pos}")
        key = key_match.group()
        pos = key_match.end() + 1
        if pos < end and line[pos] == '"':
            close = pos + 1
            while close < end and line[close] != '"':
                close += 2 if line[close] == "\\" else 1
            if close >= end:
                raise LogfmtSyntaxError(f"unterminated quoted value for {key}")
            try:
                value = json.loads(line[pos : close + 1])
            except json.JSONDecodeError as exc:
                raise LogfmtSyntaxError(f"bad escape in the value of {key}: {exc}") from exc
            pos = close + 1
            if pos < end and line[pos] != " ":
                raise LogfmtSyntaxError(f"no space after the value of {key}")
        else:
            stop = line.find(" ", pos)
            stop = end if stop < 0 else stop
            value = line[pos:stop]
            if '"' in value or "=" in value:
                raise LogfmtSyntaxError(f"bare value of {key} holds a quote or '='")
            pos = stop
        if key in result:
            raise LogfmtSyntaxError(f"key {key} repeated")
        result[key] = value
    return result
