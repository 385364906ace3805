"""`wellcar config validate` and `wellcar config transpile` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from wellcar.cli.config_commands import config_app


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(config_app, list(args), input=stdin)


def test_validate_ok_and_warnings(tmp_path: Path) -> None:
    good = tmp_path / "good.ign"
    good.write_text('{"ignition": {"version": "3.4.0"}, "passwd": {"users": [{"name": "core"}]}}')
    assert invoke("validate", str(good)).exit_code == 0
    warn = tmp_path / "warn.ign"
    warn.write_text('{"ignition": {"version": "3.4.0"}, "extra": true}')
    result = invoke("validate", str(warn))
    assert result.exit_code == 0
    assert "warning: $.extra: unused key" in result.output


def test_validate_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ign"
    bad.write_text('{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "rel"}]}}')
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    assert "error: $.storage.files[0].path: 'rel' must be an absolute path" in result.output
    assert "Traceback" not in result.output


def test_validate_stdin_and_missing_file(tmp_path: Path) -> None:
    assert invoke("validate", "-", stdin='{"ignition": {"version": "2.4.0"}}').exit_code == 0
    result = invoke("validate", str(tmp_path / "nope.ign"))
    assert result.exit_code == 1
    assert "error: cannot read" in result.output


def test_transpile_writes_valid_ignition(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("hello\n")
    source = tmp_path / "in.bu"
    source.write_text(
        "variant: flatcar\nversion: 1.1.0\nstorage:\n"
        "  files: [{path: /etc/motd, mode: 0600, contents: {local: motd}}]\n"
    )
    out = tmp_path / "out.ign"
    result = invoke("transpile", str(source), "--files-dir", str(tmp_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    config = json.loads(out.read_text())
    assert config["storage"]["files"][0]["mode"] == 384
    assert invoke("validate", str(out)).exit_code == 0


def test_transpile_strict_fails_on_warnings(tmp_path: Path) -> None:
    source = tmp_path / "in.bu"
    source.write_text("variant: flatcar\nversion: 1.1.0\nunknown_thing: 1\n")
    assert invoke("transpile", str(source)).exit_code == 0
    result = invoke("transpile", str(source), "--strict")
    assert result.exit_code == 1
    assert "warning: $.unknownThing" in result.output or "unknown_thing" in result.output
    assert "error:" in result.output
