"""The apply corpus: configs a Flatcar user brings (tests/ignition/corpus/apply), each
provisioned by the first-boot entry point into a fresh root made as `wellcar build` makes
one, and the root compared with what the config declares: files (contents, mode, owner),
directories, links, units and their enabled links (against `systemctl --root` on a copy
of the same root), users, groups, shadow and gshadow (owner and mode too),
subuid/subgid, ssh keys. Nothing is written outside the root, and a second run changes
nothing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from wellcar.ignition.butane import transpile
from wellcar.ignition.errors import ConflictError
from wellcar.ignition.fetch import Fetcher
from wellcar.ignition.firstboot import FirstBootOptions, first_boot
from wellcar.ignition.parse import parse_config
from wellcar.ignition.report import Report
from wellcar.ignition.resolve import resolve
from wellcar.ignition.rootfs import TargetRoot
from wellcar.ignition.sources import SourceLocations
from wellcar.ignition.types import Config, Owner
from wellcar.ignition.units import UNIT_DIRS

from .conftest import snapshot
from .image_root import has_unit, make_image_root

CORPUS = Path(__file__).parent / "corpus" / "apply"
CONFIGS = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".bu", ".ign"))
FLAG = Path("/etc/.wellcar-first-boot")
HOST_ACCOUNTS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid")
ETC_UNITS = "etc/systemd/system"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root chroots: needs root"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("useradd", "systemctl", "pwconv", "dpkg-deb")),
        reason="needs Debian's passwd, systemd and dpkg",
    ),
]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_root(tmp_path_factory.mktemp("image") / "root")


def copy_root(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)  # owners too


def config_bytes(name: str) -> bytes:
    path = CORPUS / name
    if path.suffix == ".bu":
        return json.dumps(transpile(path.read_text()).config).encode()
    return path.read_bytes()


def table(root: Path, name: str, width: int) -> dict[str, list[str]]:
    rows = (line.split(":") for line in (root / "etc" / name).read_text().splitlines() if line)
    return {row[0]: (row + [""] * width)[:width] for row in rows}


def owner_ids(root: Path, user: Owner, group: Owner) -> tuple[int, int]:
    passwd, groups = table(root, "passwd", 7), table(root, "group", 4)
    uid = int(passwd[user.name][2]) if user.name else (user.id or 0)
    gid = int(groups[group.name][2]) if group.name else (group.id or 0)
    return uid, gid


def real_unit(root: Path, name: str) -> str:
    """The unit systemctl must be told for name: the target of an alias link."""
    link = root / ETC_UNITS / name
    if link.is_symlink() and os.readlink(link) != "/dev/null":
        return os.path.basename(os.readlink(link))
    return name


def unit_links(root: Path) -> dict[str, str]:
    etc = root / ETC_UNITS
    return {str(p.relative_to(etc)): os.readlink(p) for p in sorted(etc.rglob("*"))
            if p.is_symlink()}  # fmt: skip


def systemctl_twin(config: Config, applied: Path, fresh: Path, twin: Path) -> dict[str, str]:
    """The unit links systemd itself makes: a copy of the fresh root with the config's unit
    files, masks and links in place, then `systemctl --root enable/disable`."""
    copy_root(fresh, twin)
    for path in (applied / ETC_UNITS).rglob("*"):
        if path.is_file() and not path.is_symlink():
            target = twin / path.relative_to(applied)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for link in config.storage.links:
        if (
            os.path.dirname(os.path.dirname(link.path)) in UNIT_DIRS
            or os.path.dirname(link.path) in UNIT_DIRS
        ):
            host = twin / link.path.lstrip("/")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.unlink(missing_ok=True)
            os.symlink(link.target or "", host)
    for unit in config.systemd.units:
        name = real_unit(twin, unit.name)
        if unit.mask:
            (twin / ETC_UNITS / name).unlink(missing_ok=True)
            os.symlink("/dev/null", twin / ETC_UNITS / name)
        elif unit.enabled is not None and (
            has_unit(twin, name) or has_unit(twin, f"{name.split('@')[0]}@.{name.rsplit('.')[-1]}")
        ):
            # enable as `systemctl enable`; disable as Ignition's preset line is applied
            # by systemd (the unit's own links go, its Also= units stay, as on Flatcar).
            argv = ["enable", name] if unit.enabled else ["preset", name]
            presets = twin / "etc/systemd/system-preset"
            presets.mkdir(parents=True, exist_ok=True)
            (presets / "00-twin.preset").write_text(f"disable {name}\n")
            subprocess.run(["systemctl", f"--root={twin}", *argv], check=True,
                           capture_output=True)  # fmt: skip
            (presets / "00-twin.preset").unlink()
    return unit_links(twin)


def expected_file(root: Path, fresh: Path, config: Config, index: int) -> tuple[bytes, int]:
    f = config.storage.files[index]
    fetcher = Fetcher(attempts=1)
    before = TargetRoot(fresh).resolve(f.path)
    if f.contents.source is not None:
        data = fetcher.fetch(f.contents, "$")
    else:
        data = before.read_bytes() if before.is_file() else b""
    data += b"".join(fetcher.fetch(r, "$") for r in f.append)
    existing = stat.S_IMODE(before.stat().st_mode) if before.is_file() else 0o644
    return data, f.mode if f.mode is not None else existing


def check_accounts(config: Config, root: Path, fresh: Path) -> None:
    passwd, groups = table(root, "passwd", 7), table(root, "group", 4)
    shadow, before = table(root, "shadow", 9), table(fresh, "passwd", 7)
    lines = (root / "etc/login.defs").read_text().splitlines()
    defs = dict(line.split()[:2] for line in lines
                if not line.startswith("#") and len(line.split()) >= 2)  # fmt: skip
    shadow_gid = int(groups["shadow"][2])
    for name in ("shadow", "gshadow"):
        st = (root / "etc" / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, shadow_gid, 0o640), name
    for group in config.passwd.groups:
        assert group.name in groups, group.name
        if group.gid is not None:
            assert int(groups[group.name][2]) == group.gid
    subuid, subgid = table(root, "subuid", 3), table(root, "subgid", 3)
    for user in config.passwd.users:
        row = passwd[user.name]
        created = user.name not in before
        if user.uid is not None:
            assert int(row[2]) == user.uid
        if user.gecos:
            assert row[4] == user.gecos
        if user.shell:
            assert row[6] == user.shell
        elif created:
            assert row[6] == "/bin/bash"  # the image's useradd default, Flatcar's shell
        if user.home_dir:
            assert row[5] == user.home_dir
        elif created:
            assert row[5] == f"/home/{user.name}"
        if user.primary_group:
            assert int(row[3]) == int(groups[user.primary_group][2])
        for group in user.groups:
            assert user.name in groups[group][3].split(","), (user.name, group)
        if user.password_hash:
            assert shadow[user.name][1] == user.password_hash
        elif created:
            assert shadow[user.name][1] == "*"  # Ignition's: no password login
        home = TargetRoot(root).resolve(row[5])
        if created and not user.no_create_home:
            assert home.is_dir() and home.stat().st_uid == int(row[2])
        uid = int(row[2])
        normal = int(defs["UID_MIN"]) <= uid <= int(defs["UID_MAX"])
        if created and normal and not user.system:
            assert user.name in subuid and user.name in subgid, user.name  # rootless
        keys = [k for k in user.ssh_authorized_keys if k.strip()]
        if keys:
            fragment = home / ".ssh/authorized_keys.d/ignition"
            assert fragment.read_text().splitlines() == keys
            assert all(k in (home / ".ssh/authorized_keys").read_text() for k in keys)
            assert fragment.stat().st_uid == uid


def check_storage(config: Config, root: Path, fresh: Path) -> None:
    target = TargetRoot(root)
    for d in config.storage.directories:
        host = target.resolve(d.path)
        assert host.is_dir(), d.path
        if d.mode is not None:
            assert stat.S_IMODE(host.stat().st_mode) == d.mode, d.path
        assert (host.stat().st_uid, host.stat().st_gid) == owner_ids(root, d.user, d.group)
    for i, f in enumerate(config.storage.files):
        host = target.resolve(f.path)
        data, mode = expected_file(root, fresh, config, i)
        assert host.read_bytes() == data, f.path
        assert stat.S_IMODE(host.stat().st_mode) == mode & 0o777, f.path
        if f.user.name or f.user.id is not None or f.group.name or f.group.id is not None:
            assert (host.stat().st_uid, host.stat().st_gid) == owner_ids(root, f.user, f.group)
    for link in config.storage.links:
        host = target.resolve(link.path, follow_last=False)
        if link.hard:
            assert host.stat().st_ino == target.resolve(link.target or "").stat().st_ino
        else:
            assert os.readlink(host) == link.target, link.path


def check_units(config: Config, root: Path, fresh: Path, twin: Path, messages: list[str]) -> None:
    etc = root / ETC_UNITS
    for i, unit in enumerate(config.systemd.units):
        if unit.contents is not None and not unit.mask:
            assert (etc / unit.name).read_text() == unit.contents
        for dropin in unit.dropins:
            assert (etc / f"{unit.name}.d" / dropin.name).read_text() == (dropin.contents or "")
        if unit.mask:
            assert os.readlink(etc / real_unit(fresh, unit.name)) == "/dev/null"
        if unit.enabled is not None and not has_unit(root, real_unit(root, unit.name)):
            template = f"{unit.name.split('@')[0]}@.{unit.name.rsplit('.')[-1]}"
            if not has_unit(root, template):
                assert any(f"units[{i}].enabled: {unit.name} exists neither" in m
                           for m in messages), messages  # fmt: skip
    # Every alias, wants/requires link and mask as systemd itself makes them.
    assert unit_links(root) == systemctl_twin(config, root, fresh, twin)
    for link in unit_links(root).values():
        assert link != os.path.join("/", ETC_UNITS, os.path.basename(link)) or (
            (root / link.lstrip("/")).is_file()
        ), f"a link to itself: {link}"


@pytest.mark.parametrize("name", CONFIGS)
def test_corpus_config_applies_as_declared(name: str, image_root: Path, tmp_path: Path) -> None:
    data = config_bytes(name)
    config = resolve(parse_config(data, name).config, Fetcher(attempts=1), Report())
    packaged = ("docker", "containerd", "sshd", "ssh.")
    needed = [u.name for u in config.systemd.units if u.contents is None and not u.mask
              and u.name.startswith(packaged)]  # fmt: skip
    missing = [n for n in needed if not has_unit(image_root, real_unit(image_root, n))]
    if missing:
        pytest.skip(f"the package cache has no package for {missing} (filled by an image build)")
    root, fresh = tmp_path / "root", tmp_path / "fresh"
    copy_root(image_root, root)
    copy_root(image_root, fresh)
    oem = tmp_path / "oem"
    oem.mkdir()
    (oem / "config.ign").write_bytes(data)
    (tmp_path / "cmdline").write_text("")
    options = FirstBootOptions(
        root=root,
        flag=FLAG,
        sources=SourceLocations(fw_cfg_dir=tmp_path / "none", oem_dir=oem,
                                cmdline=tmp_path / "cmdline"),
    )  # fmt: skip
    outside = {p: snapshot(tmp_path / p) for p in ("fresh", "oem")}
    host = {p: Path(p).read_bytes() for p in HOST_ACCOUNTS if Path(p).exists()}

    result = first_boot(options)

    assert result.ran and not (root / FLAG.relative_to("/")).exists()
    check_accounts(config, root, fresh)
    check_storage(config, root, fresh)
    check_units(config, root, fresh, tmp_path / "twin", list(result.messages))
    # Nothing outside the root: the fresh copy, the OEM dir and the host's accounts.
    assert {p: snapshot(tmp_path / p) for p in ("fresh", "oem")} == outside
    assert {p: Path(p).read_bytes() for p in host} == host
    # Again (as a forced re-run): it changes nothing, whether it refuses or not.
    once = snapshot(root)
    # (a file the config gives without overwrite now exists: refused, as Ignition would)
    with contextlib.suppress(ConflictError):
        first_boot(FirstBootOptions(root=root, flag=FLAG, sources=options.sources, force=True))
    assert snapshot(root) == once


def test_the_corpus_covers_what_flatcar_configs_use() -> None:
    texts = "".join((CORPUS / name).read_text() for name in CONFIGS)
    for feature in ("sshd.service", "docker.service", "/etc/hostname", "/etc/motd",
                    "timesyncd.conf", "ssh_authorized_keys", "password_hash", "dropins",
                    "mask", "enabled: false", "@.service", "/etc/flatcar/update.conf",
                    '"compression": "gzip"', '"version": "2.2.0"'):  # fmt: skip
        assert feature in texts, feature
