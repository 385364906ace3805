"""`wellcar release` and `wellcar trust` from the command line: output and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from tests.release.builds import make_build, payload_key
from wellcar.cli.main import app


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_release_version_prints_the_channel_version() -> None:
    result = run("release", "version", "--channel", "beta")
    assert result.exit_code == 0
    assert re.fullmatch(r"\d{4,}\.1\.0\n", result.stdout)
    assert "custom channel" in one_error_line(run("release", "version", "--channel", "edge"))
    assert re.fullmatch(
        r"\d+\.7\.0\n", run("release", "version", "--channel", "edge", "--minor", "7").stdout
    )


def test_init_create_promote_and_status(tmp_path: Path) -> None:
    tree, keys = tmp_path / "tree", tmp_path / "keys"
    result = run("trust", "init", "--tree", tree, "--keys-dir", keys)
    assert result.exit_code == 0, result.stderr
    assert "root-1.key" in result.stdout
    signing, _ = payload_key(tmp_path / "pk")
    build = make_build(tmp_path / "build", "4799.0.0")
    common = ("--tree", tree, "--keys", keys, "--signing-key", signing)
    result = run("release", "create", build, "--channel", "alpha", *common)
    assert result.exit_code == 0, result.stderr
    assert "released 4799.0.0 to alpha/amd64-usr" in result.stdout
    again = run("release", "create", build, "--channel", "alpha", *common)
    assert "already exists" in one_error_line(again)
    hint = one_error_line(run("release", "promote", "4799.0.0", "--to", "beta", *common))
    assert "wellcar build --version 4799.1.0" in hint
    rebuilt = make_build(tmp_path / "rebuilt", "4799.1.0")
    result = run("release", "promote", "4799.0.0", "--to", "beta", "--build-dir", rebuilt, *common)
    assert result.exit_code == 0, result.stderr
    assert "as 4799.1.0" in result.stdout
    backwards = run("release", "promote", "4799.1.0", "--to", "alpha", "--build-dir", rebuilt,
                    *common)  # fmt: skip
    assert "goes backwards" in one_error_line(backwards)
    status = run("trust", "status", "--tree", tree)
    assert "targets    v3" in status.stdout and "staged: nothing" in status.stdout


def test_missing_artifact_and_wrong_key_are_one_line(tmp_path: Path) -> None:
    tree, keys = tmp_path / "tree", tmp_path / "keys"
    run("trust", "init", "--tree", tree, "--keys-dir", keys)
    signing, _ = payload_key(tmp_path / "pk")
    build = make_build(tmp_path / "build", "4799.2.0")
    (build / "update.payload").unlink()
    common = ("--tree", tree, "--keys", keys, "--signing-key", signing)
    assert "no update.payload: make it with `wellcar payload generate" in one_error_line(
        run("release", "create", build, "--channel", "stable", *common)
    )
    good = make_build(tmp_path / "good", "4799.2.0")
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("nope")
    line = one_error_line(
        run(
            "release",
            "create",
            good,
            "--channel",
            "stable",
            "--tree",
            tree,
            "--keys",
            bad_key,
            "--signing-key",
            signing,
        )
    )
    assert "not an unencrypted PEM private key" in line
    assert not (tree / "stable").exists()


def test_offline_root_rotation(tmp_path: Path) -> None:
    tree, keys = tmp_path / "tree", tmp_path / "keys"
    run("trust", "init", "--tree", tree, "--keys-dir", keys)
    offline = tmp_path / "offline"
    offline.mkdir()
    (keys / "root-1.key").rename(offline / "root-1.key")
    new = run("trust", "keys", "generate", offline, "--name", "root-2")
    assert new.exit_code == 0
    result = run("trust", "rotate-root", "--tree", tree, "--keys", keys,
                 "--add", f"root={offline / 'root-2.pub'}")  # fmt: skip
    assert result.exit_code == 2 and "staged, not published" in result.stdout
    exported = tmp_path / "carry.json"
    assert run("trust", "export", "root", "--tree", tree, "-o", exported).exit_code == 0
    signed = run("trust", "sign", exported, "--keys", offline)
    assert signed.exit_code == 0, signed.stderr
    assert run("trust", "import", exported, "--tree", tree).exit_code == 0
    published = run("trust", "publish", "--tree", tree, "--keys", keys)
    assert published.exit_code == 0, published.stderr
    assert "root v2" in published.stdout
    assert (tree / "metadata" / "2.root.json").is_file()
