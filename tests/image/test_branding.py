from __future__ import annotations

from pathlib import Path

from wellcar.image.branding import apply_branding, capture_etc_defaults, render_os_release
from wellcar.image.settings import BrandProfile, BuildSettings
from wellcar.image.version import OsVersion

SETTINGS = BuildSettings(version=OsVersion(4799, 2, 1))


def parse_env(text: str) -> dict[str, str]:
    return {
        key: value.strip('"')
        for key, _, value in (line.partition("=") for line in text.splitlines() if line)
    }


def test_os_release_names_brand_and_ancestors() -> None:
    fields = parse_env(render_os_release(SETTINGS))
    assert fields["NAME"] == "Wellcar"
    assert fields["ID"] == "wellcar"
    assert fields["ID_LIKE"] == "flatcar coreos"
    assert fields["VERSION_ID"] == "4799.2.1"
    assert fields["PRETTY_NAME"] == "Wellcar Linux 4799.2.1"
    assert fields["HOME_URL"].startswith("https://")
    assert fields["WELLCAR_BOARD"] == "amd64-usr"


def test_os_release_quotes_shell_specials() -> None:
    brand = BrandProfile(name='Acme "Best" $OS')
    text = render_os_release(BuildSettings(brand=brand, version=OsVersion(1, 0, 0)))
    assert 'NAME="Acme \\"Best\\" \\$OS"' in text


def test_branding_files_and_links(fake_rootfs: Path) -> None:
    apply_branding(fake_rootfs, SETTINGS)
    share = fake_rootfs / "usr/share/wellcar"
    assert parse_env((share / "release").read_text()) == {
        "WELLCAR_RELEASE_VERSION": "4799.2.1",
        "WELLCAR_RELEASE_BOARD": "amd64-usr",
        "WELLCAR_RELEASE_APPID": "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}",
    }
    assert parse_env((share / "update.conf").read_text())["GROUP"] == "stable"
    assert (fake_rootfs / "etc/wellcar/update.conf").read_text().startswith("#")
    for ancestor in ("flatcar", "coreos"):
        assert (fake_rootfs / "usr/share" / ancestor).readlink() == Path("wellcar")
        assert (fake_rootfs / "etc" / ancestor).readlink() == Path("wellcar")
    assert (fake_rootfs / "etc/flatcar/update.conf").is_file()
    assert (fake_rootfs / "etc/os-release").readlink() == Path("../usr/lib/os-release")


def test_no_other_vendor_where_users_look(fake_rootfs: Path) -> None:
    apply_branding(fake_rootfs, SETTINGS)
    for name in ("etc/os-release", "usr/lib/os-release", "etc/issue", "etc/issue.net",
                 "etc/motd"):  # fmt: skip
        text = (fake_rootfs / name).read_text().lower()
        assert "debian" not in text, name
        assert "wellcar" in text, name
    assert not (fake_rootfs / "etc/update-motd.d/10-uname").exists()


def test_payload_keys_installed(fake_rootfs: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "release.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    (keys / "notes.txt").write_text("not a key")
    settings = BuildSettings(brand=BrandProfile(payload_key_dir=keys), version=OsVersion(1, 0, 0))
    apply_branding(fake_rootfs, settings)
    installed = fake_rootfs / "usr/share/wellcar/update-payload-keys"
    assert sorted(p.name for p in installed.iterdir()) == ["release.pem"]


def test_etc_defaults_copy(fake_rootfs: Path) -> None:
    apply_branding(fake_rootfs, SETTINGS)
    copy = capture_etc_defaults(fake_rootfs, "wellcar")
    assert copy == fake_rootfs / "usr/share/wellcar/etc-defaults"
    assert (copy / "hostname").read_text() == "localhost\n"
    assert (copy / "os-release").is_symlink()
    assert (copy / "flatcar").readlink() == Path("wellcar")
