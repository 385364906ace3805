"""The first-boot entry point: flag, config sources and their order, failure behaviour."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wellcar.ignition.errors import ConfigInvalidError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.firstboot import FirstBootOptions, first_boot
from wellcar.ignition.sources import SourceLocations, cmdline_url

from .conftest import snapshot

FLAG = Path("/etc/.wellcar-first-boot")


def write_config(path: Path, motd: str, version: str = "3.4.0") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "ignition": {"version": version},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": f"data:,{motd}"}}]},
    }
    path.write_text(json.dumps(data))  # fmt: skip


def options(
    tmp_path: Path, root: Path, cmdline: str = "", brand: str = "org.wellcar-linux"
) -> FirstBootOptions:
    (tmp_path / "cmdline").write_text(cmdline)
    return FirstBootOptions(
        root=root,
        flag=FLAG,
        sources=SourceLocations(brand_domain=brand, fw_cfg_dir=tmp_path / "fw_cfg",
                                oem_dir=tmp_path / "oem", cmdline=tmp_path / "cmdline"),
        change_owner=False,
    )  # fmt: skip


def fw_cfg(tmp_path: Path, domain: str) -> Path:
    return tmp_path / "fw_cfg" / "opt" / domain / "config" / "raw"


@pytest.fixture
def flagged(root: Path) -> Path:
    (root / FLAG.relative_to("/")).touch()
    return root


def test_without_flag_nothing_happens(tmp_path: Path, root: Path) -> None:
    write_config(fw_cfg(tmp_path, "org.wellcar-linux"), "hi")
    assert first_boot(options(tmp_path, root)).ran is False
    assert not (root / "etc/motd").exists()


def test_source_order_brand_fw_cfg_before_flatcar_before_oem(tmp_path: Path, flagged: Path) -> None:
    write_config(tmp_path / "oem" / "config.ign", "oem")
    write_config(fw_cfg(tmp_path, "org.flatcar-linux"), "flatcar")
    result = first_boot(options(tmp_path, flagged))
    assert result.origin == "fw_cfg opt/org.flatcar-linux/config"
    assert (flagged / "etc/motd").read_text() == "flatcar"
    assert not (flagged / FLAG.relative_to("/")).exists()  # cleared after success


def test_brand_domain_is_a_parameter(tmp_path: Path, flagged: Path) -> None:
    write_config(fw_cfg(tmp_path, "com.example-os"), "brand")
    write_config(fw_cfg(tmp_path, "org.flatcar-linux"), "flatcar")
    first_boot(options(tmp_path, flagged, brand="com.example-os"))
    assert (flagged / "etc/motd").read_text() == "brand"


def test_oem_config_when_nothing_else(tmp_path: Path, flagged: Path) -> None:
    write_config(tmp_path / "oem" / "config.ign", "oem", version="2.3.0")
    first_boot(options(tmp_path, flagged))
    assert (flagged / "etc/motd").read_text() == "oem"


def test_kernel_command_line_url_wins(tmp_path: Path, flagged: Path) -> None:
    write_config(fw_cfg(tmp_path, "org.wellcar-linux"), "fwcfg")
    write_config(tmp_path / "oem" / "url.ign", "cmdline")
    result = first_boot(
        options(tmp_path, flagged, cmdline="quiet ignition.config.url=oem:///url.ign ro"),
        Fetcher(oem_dir=tmp_path / "oem"),
    )
    assert result.origin == "oem:///url.ign"
    assert (flagged / "etc/motd").read_text() == "cmdline"


def test_cmdline_aliases() -> None:
    assert cmdline_url("flatcar.config.url=http://x/a.ign") == "http://x/a.ign"
    assert cmdline_url("ignition.config.url= other=1") is None


def test_no_config_is_an_empty_config(tmp_path: Path, flagged: Path) -> None:
    result = first_boot(options(tmp_path, flagged))
    assert result.ran and "empty config" in result.origin
    assert not (flagged / FLAG.relative_to("/")).exists()


def test_invalid_config_keeps_flag_and_root(tmp_path: Path, flagged: Path) -> None:
    fw = fw_cfg(tmp_path, "org.wellcar-linux")
    fw.parent.mkdir(parents=True)
    fw.write_text('{"ignition": {"version": "3.4.0"}, "storage": {"files": [{"path": "x"}]}}')
    before = snapshot(flagged)
    with pytest.raises(ConfigInvalidError, match=r"\$.storage.files\[0\].path"):
        first_boot(options(tmp_path, flagged))
    assert snapshot(flagged) == before


def test_module_entry_point_fails_with_clear_lines(tmp_path: Path, flagged: Path) -> None:
    oem = tmp_path / "oem"
    oem.mkdir()
    (oem / "config.ign").write_text('{"ignition": {"version": "9.9.9"}}')
    done = subprocess.run(
        [sys.executable, "-m", "wellcar.ignition", "first-boot", "--root", str(flagged),
         "--oem-dir", str(oem)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "unknown version '9.9.9'" in done.stderr
    assert "nothing was changed" in done.stderr


def test_node_side_modules_import_only_the_standard_library() -> None:
    code = (
        "import sys, wellcar.ignition.__main__, wellcar.ignition.firstboot;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('yaml', 'pydantic', 'typer', 'rich', 'httpx')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
