"""Every ``log_fields(...)`` call in src/ names keys of the table (checked without running it)."""

from __future__ import annotations

import ast
from pathlib import Path

from wellcar.logline import FIELD_KEYS

SRC = Path(__file__).resolve().parents[2] / "src" / "wellcar"


def test_every_call_site_uses_known_keys() -> None:
    calls = 0
    unknown: list[str] = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "log_fields":
                calls += 1
                for keyword in node.keywords:
                    if keyword.arg not in FIELD_KEYS:
                        unknown.append(f"{path.relative_to(SRC)}:{node.lineno} {keyword.arg}")
    assert calls > 50 and not unknown, unknown


def test_no_log_call_formats_values_into_its_message() -> None:
    # Untrusted values go in fields: a message is a constant string (no %-arguments, no
    # f-string), so a value can never be mistaken for the message.
    offenders: list[str] = []
    names = {"debug", "info", "warning", "error", "exception", "critical"}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            if not (isinstance(target, ast.Name) and target.id in {"log", "logger"}):
                continue
            if node.func.attr in names:
                message, arguments = node.args[:1], node.args[1:]
            elif node.func.attr == "log":
                message, arguments = node.args[1:2], node.args[2:]
            else:
                continue
            constant = all(isinstance(m, ast.Constant) for m in message)
            if arguments or not constant:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []
