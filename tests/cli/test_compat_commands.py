"""The node's commands: Flatcar's update_engine_client and locksmithctl (verbs, output
shapes, exit codes) against a real agent, and the node CLI importable on the system's
python3 with only the packages the image ships."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.test_control import NEW_VERSION, OmahaStub, SignedPayload, running
from tests.cli.test_agent_commands import (
    UPDATE_ENGINE_KEYS,
    node_of,
    write_conf,
)
from wellcar.agent.compat import locksmithctl, update_engine_client

# The node fixtures (root, omaha, payload) of the `wellcar agent` tests.
pytest_plugins = ["tests.cli.test_agent_commands"]

SRC = Path(__file__).resolve().parents[2] / "src"
# What the image ships besides the standard library: Debian's python3-* packages (and their
# dependencies) and the vendored ones (wellcar.image.settings, wellcar.image.rootfs).
NODE_PACKAGES = (
    "httpx", "httpcore", "anyio", "sniffio", "h11", "idna", "certifi", "lxml", "cryptography",
    "cffi", "_cffi_backend", "zstandard", "typing_extensions", "markdown_it", "mdurl",
    "pygments", "rich", "tuf", "securesystemslib", "urllib3", "bsdiff4",
)  # fmt: skip
NOT_ON_THE_NODE = ("pydantic", "typer", "click", "fastapi", "sqlalchemy", "yaml", "uvicorn")


def uec(root: Path, *flags: str) -> int:
    return update_engine_client.main(["-root", str(root), *flags])


def lsc(root: Path, *args: str) -> int:
    return locksmithctl.main(["-root", str(root), *args])


# ------------------------------------------------------------- update_engine_client


def test_status_prints_exactly_update_engines_five_lines(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(node_of(root)):
        assert uec(root, "-status") == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("=")[0] for line in out] == list(UPDATE_ENGINE_KEYS)
    assert out[1:] == [
        "PROGRESS=0.000000", "CURRENT_OP=UPDATE_STATUS_IDLE", "NEW_VERSION=0.0.0", "NEW_SIZE=0",
    ]  # fmt: skip


def test_status_without_an_agent_shows_the_saved_state_and_exits_1(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert uec(root, "--status") == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    assert "the update agent is not running" in captured.err


def test_update_check_reset_and_bad_flags(
    root: Path, omaha: OmahaStub, payload: SignedPayload, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(node_of(root)):
        assert uec(root, "-check_for_update") == 0
        omaha.payload = payload
        assert uec(root, "-update") == 0
        assert "Update succeeded -- reboot needed." in capsys.readouterr().err
        assert uec(root, "-status") == 0
        out = capsys.readouterr().out
        assert "CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT" in out
        assert f"NEW_VERSION={NEW_VERSION}" in out
        assert uec(root, "-reset_status") == 0
        assert "ResetStatus succeeded" in capsys.readouterr().err
    assert uec(root, "-frobnicate") == 1
    assert "unknown command line flag 'frobnicate'" in capsys.readouterr().err
    assert uec(root, "-check_for_update") == 1  # no agent
    assert "Error checking for update: no agent is running" in capsys.readouterr().err


def test_checks_fail_when_updates_are_disabled(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_conf(root, "SERVER=disabled")
    with running(node_of(root)):
        assert uec(root, "-check_for_update") == 1
        assert uec(root, "-update") == 1
    assert "updates are disabled" in capsys.readouterr().err


# ---------------------------------------------------------------------- locksmithctl


def test_locksmithctl_with_a_local_strategy(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lsc(root, "status") == 0
    assert capsys.readouterr().out == "Available: 1\nMax: 1\n"
    assert lsc(root, "unlock") == 0  # no cluster lock to release
    assert lsc(root, "reboot-now") == 2
    assert "unknown subcommand: 'reboot-now'" in capsys.readouterr().out
    assert lsc(root, "send-need-reboot") == 1  # no agent
    with running(node_of(root)):
        assert lsc(root, "send-need-reboot") == 0  # strategy off: requested, no reboot
    assert "reboot requested (strategy off)" in capsys.readouterr().err


def test_locksmithctl_status_fails_with_1_when_the_fleetlock_server_is_unreachable(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_conf(root, "REBOOT_STRATEGY=fleet-lock", "FLEETLOCK_URL=http://127.0.0.1:9/")
    assert lsc(root, "status") == 1
    assert lsc(root, "unlock", "0123") == 1
    err = capsys.readouterr().err
    assert "Error getting the reboot lock" in err and "Error unlocking" in err


# ------------------------------------------------------- on the node's python3 only


def node_site(tmp_path: Path) -> Path:
    """A directory holding only the packages the node ships (links into the venv)."""
    site = tmp_path / "node-site"
    site.mkdir()
    for name in NODE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (site / source.name).symlink_to(source)
    return site


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no system python3")
def test_the_node_commands_run_on_the_system_python_with_only_the_node_packages(
    tmp_path: Path,
) -> None:
    version = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if version != str(sys.version_info[:2]):
        pytest.skip(f"system python3 is {version}; the venv's extensions need the same ABI")
    site = node_site(tmp_path)
    (tmp_path / "etc/wellcar").mkdir(parents=True)
    (tmp_path / "etc/wellcar/update.conf").write_text("SERVER=disabled\n")
    probe = "\n".join(
        [
            "import sys",
            f"sys.path[:0] = [{str(SRC)!r}, {str(site)!r}]",
            f"sys.argv = ['wellcar', 'agent', 'status', '--root', {str(tmp_path)!r}]",
            "import wellcar.agent.cli, wellcar.agent.runner",
            "import wellcar.agent.compat.update_engine_client, wellcar.agent.compat.locksmithctl",
            "code = wellcar.agent.cli.wellcar_main()",
            f"loaded = sorted(m for m in {NOT_ON_THE_NODE!r} if m in sys.modules)",
            "print('LOADED=' + ','.join(loaded))",
            "sys.exit(code)",
        ]
    )
    # -I: no user site, no PYTHON* variables; -S: no site-packages at all.
    result = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", probe],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "CURRENT_OP=UPDATE_STATUS_IDLE" in result.stdout
    assert "SERVER=disabled" in result.stdout
    assert "LOADED=\n" in result.stdout  # no pydantic, typer, fastapi, sqlalchemy...
