"""The real build: mmdebstrap of the default package set, end to end, twice (N and N+1,
shared with the VM tests), plus a rebuild of N that must give the same /usr bytes."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import time
from pathlib import Path

import pytest

from wellcar.image.etc_defaults import first_boot_etc

from .builds import OLD_LIBSSL, VERSION_N, OsBuilds, build_os, package_cache

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def manifest(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().split())


def test_outputs_and_package_manifests(os_builds: OsBuilds) -> None:
    n, n1 = os_builds.n, os_builds.n1
    for build in (n, n1):
        for name in ("disk.img", "usr.img", "vmlinuz", "initrd.img", "update.payload",
                     "packages.txt", "version.txt", "SHA256SUMS", "build.log"):  # fmt: skip
            assert build.file(name).is_file(), (build.version, name)
    assert not (n1.output / ".work").exists()  # N keeps its rootfs for the tests below
    old, new = manifest(n.file("packages.txt")), manifest(n1.file("packages.txt"))
    for name in ("systemd", "linux-image-amd64", "openssh-server", "containerd", "docker.io",
                 "python3", "busybox-static", "cryptsetup-bin"):  # fmt: skip
        assert name in old, name
    # One package upgraded, nothing else moved.
    assert {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} == {"libssl3"}
    assert old["libssl3"] == OLD_LIBSSL
    # No package manager on the node; the dpkg database (this manifest's source) stays.
    assert "apt" not in old and not any(name.startswith("libapt-pkg") for name in old)
    assert "sudo" in old
    assert n.file("initrd.img").stat().st_size > 1 << 20


def test_usr_image_is_verity_sealed(os_builds: OsBuilds) -> None:
    n = os_builds.n
    version = n.version_txt
    assert version["WELLCAR_USR_ROOT_HASH"] == n.result.root_hash
    offset = version["WELLCAR_USR_HASH_OFFSET"]
    usr = str(n.file("usr.img"))
    argv = ["veritysetup", "verify", f"--hash-offset={offset}", usr, usr, n.result.root_hash]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_branding_and_node_setup(os_builds: OsBuilds) -> None:
    rootfs = os_builds.n.output / ".work/rootfs"
    os_release = (rootfs / "usr/lib/os-release").read_text()
    assert 'ID="wellcar"' in os_release and "debian" not in os_release.lower()
    assert 'ID_LIKE="flatcar coreos"' in os_release
    for name in ("usr/share/factory/etc/issue", "usr/share/factory/etc/motd"):
        assert "debian" not in (rootfs / name).read_text().lower(), name
    assert (rootfs / "etc/flatcar").readlink() == Path("wellcar")
    units = rootfs / "etc/systemd/system"
    for unit, target in (("wellcar-agent.service", "multi-user.target.wants"),
                         ("wellcar-ignition.service", "multi-user.target.wants"),
                         ("wellcar-etc-defaults.service", "sysinit.target.wants"),
                         ("wellcar-etc-factory.service", "multi-user.target.wants")):  # fmt: skip
        assert (units / target / unit).is_symlink(), unit
    assert (units / "systemd-bless-boot.service").readlink() == Path("/dev/null")
    assert not list((rootfs / "etc/ssh").glob("ssh_host_*"))  # made on each machine
    assert not (rootfs / "usr/bin/apt").exists() and not (rootfs / "usr/bin/apt-get").exists()
    assert not list(rootfs.glob("usr/lib/systemd/system/apt-daily*"))
    assert not list(rootfs.glob("etc/systemd/system/timers.target.wants/apt-daily*"))
    assert (rootfs / "var/lib/dpkg/status").is_file()
    # The core user and its sudo, in /etc and in the /etc defaults that populate a node.
    # (sudoers waits in the factory /etc until provisioning is done: docs/ignition.md)
    assert (rootfs / "usr/share/factory/etc/sudoers.d/passwordless-sudo").is_file()
    for etc in (rootfs / "etc", rootfs / "usr/share/wellcar/etc-defaults"):
        assert "core:x:500:500:" in (etc / "passwd").read_text(), etc
        wheel = next(line for line in (etc / "group").read_text().splitlines()
                     if line.startswith("wheel:"))  # fmt: skip
        assert wheel.endswith(":core"), wheel
    # Built with no key named: the development set's public key and TUF root are shipped.
    keys = os_builds.dev_keys
    share = rootfs / "usr/share/wellcar"
    assert (share / "update-payload-keys/release.pem").read_bytes() == keys.public_key.read_bytes()
    assert (share / "trust/root.json").read_bytes() == keys.trust_root.read_bytes()
    assert (rootfs / "etc/machine-id").read_text() == ""
    assert (rootfs / "etc/.wellcar-first-boot").exists()
    assert not (rootfs / "usr/share/wellcar/etc-defaults/.wellcar-first-boot").exists()
    # The initrd carries the verity /usr script and veritysetup (listed with the image's
    # own initramfs-tools).
    initrd = next((rootfs / "boot").glob("initrd.img-*")).name
    done = subprocess.run(["chroot", str(rootfs), "lsinitramfs", f"/boot/{initrd}"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-1000:]
    assert "scripts/local-bottom/wellcar-usr" in done.stdout
    assert "sbin/veritysetup" in done.stdout
    # The node's side of Wellcar imports on the image's python3 with the image's libraries.
    code = (
        "import sys; sys.path.insert(0, '/usr/lib/wellcar/python'); "
        "import wellcar.agent.daemon, wellcar.payload.apply, wellcar.disk, "
        "wellcar.ignition.firstboot, wellcar.trust.client, wellcar.agent.trusted_payload"
    )
    done = subprocess.run(["chroot", str(rootfs), "/usr/bin/python3", "-c", code],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_first_boot_etc_holds_only_what_cannot_wait(os_builds: OsBuilds) -> None:
    """What the first-boot /etc holds, each entry with its reason (printed); every other
    default waits in /usr/share/factory/etc for the tmpfiles lines run after provisioning,
    so a config's /etc/hostname, /etc/motd or timesyncd.conf needs no overwrite."""
    rootfs = os_builds.n.output / ".work/rootfs"
    entries = first_boot_etc("wellcar")
    print("\nfirst-boot /etc:")
    for path in sorted(
        p.relative_to(rootfs / "etc").as_posix() for p in (rootfs / "etc").iterdir()
    ):
        entry = next((e for e in entries if fnmatch.fnmatchcase(path, e.pattern)), None)
        assert entry is not None, f"/etc/{path} has no reason to be in the first-boot /etc"
        print(f"  /etc/{path:24} {entry.reason}")
    for name in ("hostname", "motd", "issue", "hosts", "systemd/timesyncd.conf", "ssh", "sudoers",
                 "wellcar/update.conf", "containerd/config.toml", "localtime"):  # fmt: skip
        assert not os.path.lexists(rootfs / "etc" / name), name
    factory = rootfs / "usr/share/factory/etc"
    lines = (rootfs / "usr/lib/wellcar/etc-factory.conf").read_text().splitlines()
    for name in ("motd", "systemd/timesyncd.conf", "ssh/sshd_config", "wellcar/update.conf"):
        assert (factory / name).is_file(), name
        assert f"C /etc/{name} - - - -" in lines, name
    assert not (factory / "hostname").exists()  # DHCP or a config names the node
    assert "L /etc/localtime - - - - /usr/share/zoneinfo/Etc/UTC" in lines
    # The shadow tools find what they need, as Debian has it.
    shadow = (rootfs / "etc/shadow").stat()
    assert (shadow.st_gid, shadow.st_mode & 0o777) == (42, 0o640)
    assert (rootfs / "etc/subuid").is_file() and (rootfs / "etc/default/useradd").is_file()


def test_package_cache_holds_every_deb(os_builds: OsBuilds) -> None:
    debs = {p.name.split("_")[0] for p in package_cache().glob("*.deb")}
    packages = manifest(os_builds.n1.file("packages.txt"))
    assert set(packages) <= debs, sorted(set(packages) - debs)[:10]


def test_rebuild_gives_the_same_usr_image(os_builds: OsBuilds, tmp_path: Path) -> None:
    started = time.perf_counter()
    again = build_os(VERSION_N, OLD_LIBSSL, tmp_path / "again", os_builds.dev_keys.directory)
    print(f"\nwarm rebuild of {VERSION_N}: {time.perf_counter() - started:.0f} s, "
          f"steps {again.result.seconds}")  # fmt: skip
    assert again.result.root_hash == os_builds.n.result.root_hash
    first, second = os_builds.n.file("usr.img"), again.file("usr.img")
    assert first.stat().st_size == second.stat().st_size
    with first.open("rb") as a, second.open("rb") as b:
        while chunk := a.read(1 << 24):
            assert chunk == b.read(1 << 24)
