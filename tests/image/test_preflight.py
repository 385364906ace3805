"""Bad input stops a build at once, with one clear line, and leaves nothing that looks
finished."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wellcar.cli.main import build_app
from wellcar.image import ImageBuildError, build
from wellcar.image.errors import ImageContentError
from wellcar.image.preflight import (
    check_packages,
    check_space,
    missing_tools,
    output_names,
    required_space,
)
from wellcar.image.settings import BuildSettings

from .conftest import needs_tools


def test_missing_tools_are_named_with_their_package() -> None:
    found = missing_tools({"sh": "dash", "wellcar-no-such-tool": "wellcar-pkg"})
    assert found == ["wellcar-no-such-tool (wellcar-pkg)"]


def test_a_missing_tool_stops_the_cli_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = CliRunner().invoke(
        build_app(), ["build", "--output", str(tmp_path / "out")], env={"PATH": str(empty)}
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: preflight: missing build tools: mmdebstrap (mmdebstrap)")
    assert not (tmp_path / "out/SHA256SUMS").exists()


@needs_tools("apt-cache")
def test_unknown_packages_are_refused_before_building(small_settings: BuildSettings) -> None:
    wrong = ("wellcar-no-such-package", "bash=0.0-not-a-version")
    settings = replace(small_settings, packages=("bash",), extra_packages=wrong)
    with pytest.raises(ImageContentError) as caught:
        check_packages(settings)
    message = str(caught.value)
    assert message.startswith("preflight: unknown package(s): wellcar-no-such-package, ")
    assert "bash=0.0-not-a-version" in message and "bash," not in message


def test_not_enough_space_is_refused(small_settings: BuildSettings) -> None:
    huge = replace(small_settings, usr_size=1 << 50)
    with pytest.raises(ImageContentError, match=r"not enough space in .*: the build needs about"):
        check_space(huge)
    check_space(small_settings)  # a few hundred MiB: fine in tmp
    assert required_space(small_settings) > 2 * small_settings.usr_size


@needs_tools("mkfs.erofs", "veritysetup", "mkfs.vfat", "mcopy", "mkfs.ext4")
def test_a_failed_build_leaves_no_finished_looking_outputs(
    small_settings: BuildSettings, fake_rootfs: Path
) -> None:
    out = small_settings.output
    out.mkdir(parents=True)
    for name in output_names():  # a previous build's files
        (out / name).write_text("old\n")
    # No kernel: the build fails after it wrote packages.txt.
    shutil.rmtree(fake_rootfs / "boot")
    (fake_rootfs / "boot").mkdir()
    with pytest.raises(ImageBuildError, match="no /boot/vmlinuz"):
        build(small_settings, rootfs=fake_rootfs)
    assert [name for name in output_names() if (out / name).exists()] == []
    assert (out / "build.log").read_text().splitlines()[-1].startswith("## failed: kernel: ")


def test_missing_input_files_are_named_at_once(
    small_settings: BuildSettings, fake_rootfs: Path, tmp_path: Path
) -> None:
    brand = replace(small_settings.brand, trust_root=tmp_path / "root.json",
                    payload_key_dir=tmp_path)  # fmt: skip
    settings = replace(small_settings, brand=brand, signing_key=tmp_path / "nope.key",
                       extra_trees=(tmp_path / "tree",))  # fmt: skip
    with pytest.raises(ImageContentError) as caught:
        build(settings, rootfs=fake_rootfs)
    assert str(caught.value) == (
        f"preflight: trust-root {tmp_path}/root.json is not a file; payload-key-dir {tmp_path} "
        f"holds no *.pub or *.pem key; signing-key {tmp_path}/nope.key is not a file; extra tree "
        f"{tmp_path}/tree is not a directory"
    )
    assert not (small_settings.output / "SHA256SUMS").exists()
