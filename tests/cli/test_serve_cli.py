"""`wellcar serve` refuses bad settings with one clear line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from wellcar.cli.main import app


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ("mysql://x/y", "unsupported database 'mysql'"),
        ("postgresql://nobody@127.0.0.1:1/db", "cannot reach the database"),
        ("::not a url::", "invalid database URL"),
    ],
)
def test_bad_database(tmp_path: Path, database: str, message: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--database", database])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
