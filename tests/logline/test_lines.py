"""The log line formats: every value escaped, parsed back exactly, clipped with a marker."""

from __future__ import annotations

import json
import logging
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellcar.cli.log_options import LogFormatChoice
from wellcar.logline import (
    FIELD_KEYS,
    LOG_FORMATS,
    MAX_VALUE_CHARS,
    JsonFormatter,
    LogfmtFormatter,
    clip,
    log_fields,
    logfmt_value,
    parse_logfmt,
)
from wellcar.logline.encode import LogfmtSyntaxError, quote
from wellcar.logline.fields import RESERVED_KEYS
from wellcar.logline.journal import JournalHandler, priority

FORGED = 'abc\nts=2026-12-05T00:00:00.000Z level=error logger=wellcar.auth msg="admin"'


def record(msg: str, level: int = logging.INFO, **values: object) -> logging.LogRecord:
    rec = logging.LogRecord("wellcar.test", level, __file__, 1, msg, None, None)
    rec.__dict__.update(log_fields(**values))
    return rec


def test_a_forged_line_stays_one_line_and_one_field() -> None:
    line = LogfmtFormatter().format(record("unknown application", machine_id=FORGED))
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["machine_id"] == FORGED and fields["level"] == "info"
    assert list(fields) == ["ts", "level", "logger", "msg", "machine_id"]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a\nb", r'"a\nb"'),
        ("a\rb", r'"a\rb"'),
        ("a\tb", r'"a\tb"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("\x00", r'"\u0000"'),
        ("\x1b[2J", r'"\u001b[2J"'),
        ("\x7f", r'"\u007f"'),
        ("\u009b31m", r'"\u009b31m"'),  # C1 CSI: a terminal escape without ESC
        ("\u0085", r'"\u0085"'),  # NEL
        ("\u2028\u2029", r'"\u2028\u2029"'),
        ("\u202e", r'"\u202e"'),  # bidi override
        ("\u200b", r'"\u200b"'),  # zero width space
        ("\udcff", r'"\udcff"'),  # a lone surrogate (undecodable input)
        ("\U000e0041", r'"\udb40\udc41"'),  # a tag character, as a JSON surrogate pair
        ("", '""'),
        ("a b", '"a b"'),
        ("k=v", '"k=v"'),
        ("Grüße", '"Grüße"'),  # printable text stays readable
    ],
)
def test_every_dangerous_character_is_escaped(text: str, escaped: str) -> None:
    assert logfmt_value(text) == escaped
    assert json.loads(escaped) == text  # a quoted value is a JSON string


def test_plain_tokens_and_numbers_are_bare() -> None:
    assert logfmt_value("4893.0.1") == "4893.0.1"
    assert logfmt_value("http://10.0.2.100:8000/v1/update/") == "http://10.0.2.100:8000/v1/update/"
    assert logfmt_value(42) == "42" and logfmt_value(0.5) == "0.5" and logfmt_value(True) == "true"


def test_no_control_or_format_character_survives_quoting() -> None:
    # Every code point of the categories that can end a line, drive a terminal or reorder
    # text on screen, checked against this Python's Unicode database.
    dangerous = [
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
    ]
    # (apart, because JSON reads an escaped high + low surrogate as one character)
    text = "x".join(dangerous)
    quoted = quote(text)
    assert all(ord(ch) < 0x7F and ch.isprintable() for ch in quoted)
    assert json.loads(quoted) == text


@given(st.text())
def test_any_text_round_trips_through_logfmt_and_json(text: str) -> None:
    rec = record(text, error=text, reason=text)
    fields = parse_logfmt(LogfmtFormatter().format(rec))
    assert fields["msg"] == clip(text, 4096) and fields["error"] == clip(text)
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["msg"] == clip(text, 4096) and obj["reason"] == clip(text)
    assert "\n" not in LogfmtFormatter().format(rec) + JsonFormatter().format(rec)


def test_long_values_are_cut_with_a_marker() -> None:
    value = "x" * 65536
    assert clip(value) == "x" * MAX_VALUE_CHARS + "...[truncated: 65536 chars]"
    line = LogfmtFormatter().format(record("m" * 100_000, error=value))
    assert len(line) < 6000
    assert parse_logfmt(line)["msg"].endswith("[truncated: 100000 chars]")


def test_a_traceback_is_one_escaped_field() -> None:
    try:
        raise ValueError("boom\nlevel=error forged")
    except ValueError:
        rec = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = LogfmtFormatter().format(rec)
    assert "\n" not in line
    assert "ValueError: boom\nlevel=error forged" in parse_logfmt(line)["exc"]
    assert "forged" in json.loads(JsonFormatter().format(rec))["exc"]


def test_third_party_messages_with_arguments_are_escaped_too() -> None:
    rec = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s", (FORGED,), None)
    assert parse_logfmt(LogfmtFormatter().format(rec))["msg"] == "HTTP Request: " + FORGED


def test_keys_come_from_the_table() -> None:
    with pytest.raises(KeyError, match=r"not in wellcar\.logline\.FIELD_KEYS"):
        log_fields(msg="forged level")
    with pytest.raises(KeyError):
        log_fields(**{"level=error x": 1})
    assert not set(RESERVED_KEYS) & FIELD_KEYS.keys()
    # A key smuggled in by hand (not through log_fields) is not written.
    rec = record("x")
    rec.__dict__["wellcar_fields"] = {"level": "error", "version": "1"}
    assert list(parse_logfmt(LogfmtFormatter().format(rec))) == [
        "ts", "level", "logger", "msg", "version",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "line",
    ['msg="open', 'msg=a"b', 'msg="a"b', "msg=1 msg=2", "=x", 'msg="\\q"'],
)
def test_the_reader_is_strict(line: str) -> None:
    with pytest.raises(LogfmtSyntaxError):
        parse_logfmt(line)


def test_json_lines_are_ascii_objects() -> None:
    line = JsonFormatter().format(record("m", error="\x1b\u202e", seconds=0.25, pid=7))
    assert line.isascii()
    obj = json.loads(line)
    assert obj["error"] == "\x1b\u202e" and obj["seconds"] == 0.25 and obj["pid"] == 7
    nan = json.loads(JsonFormatter().format(record("m", seconds=float("nan"))))
    assert nan["seconds"] == "nan"


def test_journal_entries_carry_priority_identifier_and_fields() -> None:
    sent: list[tuple[str, dict[str, str]]] = []
    handler = JournalHandler("wellcar-agent", lambda message, **kw: sent.append((message, kw)))
    handler.setFormatter(LogfmtFormatter(with_time=False))
    handler.emit(record("update failed", logging.ERROR, version="2\n", error=FORGED))
    message, extra = sent[0]
    assert extra["PRIORITY"] == "3" and extra["SYSLOG_IDENTIFIER"] == "wellcar-agent"
    assert extra["WELLCAR_VERSION"] == "2\n" and extra["WELLCAR_ERROR"] == FORGED
    assert "\n" not in message and parse_logfmt(message)["msg"] == "update failed"
    assert [priority(n) for n in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]


def test_the_cli_offers_exactly_the_known_formats() -> None:
    assert tuple(choice.value for choice in LogFormatChoice) == LOG_FORMATS
