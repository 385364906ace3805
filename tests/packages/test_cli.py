"""`wellcar packages`: user mistakes end with one error line and status 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from wellcar.cli.main import app


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["packages", *args], env={"COLUMNS": "200"})


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_bad_arguments(tmp_path: Path) -> None:
    assert "not a package set" in one_error_line(run("build", "--set", str(tmp_path / "x")))
    assert "not in the package set" in one_error_line(run("build", "nosuch"))
    line = one_error_line(run("repo", "-o", str(tmp_path / "r"), "--key-dir", str(tmp_path)))
    assert "no secret signing key" in line
    assert not (tmp_path / "r").exists()
    assert "not an image build" in one_error_line(run("status", "--image", str(tmp_path)))
    (tmp_path / "packages.txt").write_text("dash=1\n")
    line = one_error_line(run("status", "--image", str(tmp_path), "--repo", str(tmp_path)))
    assert "not a Wellcar repository" in line
