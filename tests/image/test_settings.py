from __future__ import annotations

import re
from pathlib import Path

import pytest

from wellcar.cli.build_command import build_command
from wellcar.disk.sizes import MiB
from wellcar.image import SettingsError, resolve_settings
from wellcar.image.settings import (
    DEFAULT_PACKAGES,
    SETTINGS,
    BrandProfile,
    cli_name,
    settings_markdown,
)
from wellcar.image.version import OsVersion

DOCS = Path(__file__).resolve().parents[2] / "docs/image.md"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_wellcar_brand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WELLCAR_PACKAGE_CACHE", raising=False)
    settings = resolve_settings(None, {"version": "4799.0.0"})
    assert settings.brand == BrandProfile()
    assert settings.brand.id_like == "flatcar coreos"
    assert settings.version == OsVersion(4799, 0, 0)
    assert settings.packages == DEFAULT_PACKAGES
    assert "linux-image-amd64" in settings.packages
    assert settings.package_cache == Path.home() / ".cache/wellcar/packages"


def test_profile_sets_brand_and_build(tmp_path: Path) -> None:
    profile = write(
        tmp_path / "acme.toml",
        """
[brand]
name = "Acme"
id = "acme"
pretty-name = "Acme OS"
home-url = "https://acme.example/"
update-group = "beta"
payload-key-dir = "keys"

[build]
version = "4800.1.2"
usr-size = "512M"
extra-packages = ["htop"]
source-date-epoch = 1700000000
""",
    )
    settings = resolve_settings(profile)
    assert settings.brand.name == "Acme"
    assert settings.brand.prefix == "ACME"
    assert settings.brand.update_group == "beta"
    assert settings.brand.payload_key_dir == tmp_path / "keys"  # relative to the profile
    assert settings.version == OsVersion(4800, 1, 2)
    assert settings.usr_size == 512 * MiB
    assert settings.all_packages[-1] == "htop"
    assert settings.epoch == 1700000000


def test_command_line_beats_profile(tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", '[brand]\nid = "acme"\n[build]\nusr-size = "512M"\n')
    settings = resolve_settings(
        profile, {"usr_size": "256M", "brand_id": None, "packages": "a, b", "version": "1.2.3"}
    )
    assert settings.usr_size == 256 * MiB
    assert settings.brand.id == "acme"  # None: option not given
    assert settings.packages == ("a", "b")


def test_epoch_defaults_to_the_version_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    settings = resolve_settings(None, {"version": "4799.0.0"})
    assert settings.source_date_epoch is None
    assert settings.epoch == OsVersion(4799, 0, 0).day_epoch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert resolve_settings(None, {"version": "4799.0.0"}).epoch == 1234


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[brand]\nnmae = "x"\n', r"p\.toml: unknown key 'nmae' in \[brand\]"),
        ("[images]\nx = 1\n", r"p\.toml: unknown table \[images\]"),
        ('[build]\nusr-size = "100K"\n', r"build\.usr-size .* in .*p\.toml: 100 KiB is not"),
        ('[build]\nversion = "1.2"\n', r"build\.version .* in .*p\.toml: '1.2' is not MAJOR"),
        ('[brand]\nid = "Acme OS"\n', r"brand\.id .* in .*p\.toml: 'Acme OS' is not an ident"),
        ('[brand]\nhome-url = "acme.example"\n', r"brand\.home-url .*p\.toml.* http"),
        ('[brand]\napp-id = "e96281a6"\n', r"brand\.app-id .*p\.toml"),
        ('[build]\npackages = "systemd"\n', None),  # a string is a one-element list
        ("[build]\npayload-zstd-level = true\n", r"build\.payload-zstd-level .*p\.toml"),
        ("[build\n", r"p\.toml is not valid TOML"),
    ],
)
def test_profile_errors_name_setting_and_file(
    tmp_path: Path, text: str, message: str | None
) -> None:
    profile = write(tmp_path / "p.toml", text)
    if message is None:
        assert resolve_settings(profile).packages == ("systemd",)
        return
    with pytest.raises(SettingsError, match=message):
        resolve_settings(profile)


def test_bad_cli_value_names_the_option() -> None:
    with pytest.raises(SettingsError, match=r"--usr-size\) in the command line"):
        resolve_settings(None, {"usr_size": "huge"})


def test_cli_has_one_option_per_setting() -> None:
    import inspect

    params = inspect.signature(build_command).parameters
    assert {cli_name(s) for s in SETTINGS} <= set(params)
    assert set(params) - {cli_name(s) for s in SETTINGS} == {
        "profile",
        "keep_work",
        "platform",  # platform images: not a setting of the OS build (docs/platforms.md)
        "platforms_only",
    }


def test_docs_table_is_generated_from_the_settings() -> None:
    text = DOCS.read_text()
    match = re.search(
        r"<!-- settings-table:begin -->\n(.*?)<!-- settings-table:end -->", text, re.S
    )
    assert match is not None, "docs/image.md lost its settings-table markers"
    assert match.group(1) == settings_markdown(), (
        "docs/image.md is stale: regenerate with "
        "python -c 'from wellcar.image.settings import settings_markdown as m; print(m())'"
    )
