"""A plain Debian disk image, the baseline of bench/image.py's boot comparison.

The same suite, mirrors and package cache as `wellcar build`, so the kernel is the same
package: mmdebstrap minbase plus systemd, udev, the kernel, initramfs-tools and
openssh-server; the whole tree in one ext4 root partition (``mkfs.ext4 -d``), an ESP with
systemd-boot as ``EFI/BOOT/BOOTX64.EFI`` holding the tree's kernel and initrd and one entry
``root=PARTLABEL=root rw console=ttyS0``, and a GPT written by sfdisk. root's
authorized_keys is the bench's key, the ssh host keys are made in the tree
(``ssh-keygen -A``), and systemd-networkd runs DHCP on every Ethernet link, as on Wellcar.
Plain file writes, no loop devices (needs root for mmdebstrap ``--mode=root``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from wellcar.image.settings import DEFAULT_MIRRORS

PACKAGES = ("systemd", "systemd-sysv", "udev", "linux-image-amd64", "initramfs-tools",
            "openssh-server")  # fmt: skip
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"  # Linux root (x86-64)
MIB = 1 << 20
ESP_SIZE = 128 * MIB
DHCP_NETWORK = "[Match]\nType=ether\n\n[Network]\nDHCP=yes\n"
LOADER_CONF = "timeout 0\ndefault debian.conf\n"
ENTRY = ("title Debian\nlinux /vmlinuz\ninitrd /initrd.img\n"
         "options root=PARTLABEL=root rw console=ttyS0\n")  # fmt: skip


@dataclass(frozen=True)
class PlainImage:
    disk: Path
    kernel: Path  # the tree's /boot/vmlinuz-<version>
    initrd: Path
    kernel_release: str  # from the file name: 6.1.0-...-amd64
    packages: int  # installed packages
    tree_bytes: int
    mmdebstrap_seconds: float
    image_seconds: float


def _run(argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, **(env or {})})  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {done.returncode}); see {log}")


def _tree_bytes(tree: Path) -> int:
    out = subprocess.run(["du", "-sb", "--one-file-system", str(tree)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return int(out.split()[0])


def _copy_sparse(source: Path, disk: Path, offset: int) -> None:
    """Write source into disk at offset; all-zero MiB chunks are skipped (left sparse)."""
    with source.open("rb") as src, disk.open("r+b") as dst:
        position = offset
        while chunk := src.read(MIB):
            if chunk.count(0) != len(chunk):
                dst.seek(position)
                dst.write(chunk)
            position += len(chunk)


def run_mmdebstrap(tree: Path, cache: Path, log: Path, mirrors: tuple[str, ...],
                   suite: str = "bookworm") -> None:  # fmt: skip
    """mmdebstrap into tree with the package cache hooks of wellcar.image.rootfs."""
    archives = "/var/cache/apt/archives"
    cache.mkdir(parents=True, exist_ok=True)
    argv = [
        "mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
        f"--include={','.join(PACKAGES)}",
        "--skip=download/empty", "--skip=essential/unlink",
        f'--setup-hook=mkdir -p "$1"{archives}',
        f"--setup-hook=sync-in {cache} {archives}",
        f"--customize-hook=sync-out {archives} {cache}",
        suite, str(tree), *mirrors,
    ]  # fmt: skip
    _run(argv, log)
    (cache / "lock").unlink(missing_ok=True)


def configure_tree(tree: Path, public_key: str, log: Path) -> None:
    (tree / "etc/hostname").write_text("debian\n")
    (tree / "etc/fstab").write_text("PARTLABEL=root / ext4 rw,errors=remount-ro 0 1\n")
    ssh_dir = tree / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key.strip() + "\n")
    (ssh_dir / "authorized_keys").chmod(0o600)
    _run(["ssh-keygen", "-A", "-f", str(tree)], log)
    network = tree / "etc/systemd/network/80-dhcp.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text(DHCP_NETWORK)
    _run(["systemctl", f"--root={tree}", "enable", "systemd-networkd.service"], log)


def make_disk(tree: Path, kernel: Path, initrd: Path, work: Path, log: Path) -> Path:
    """ESP + ext4 root from tree, in a GPT disk image; returns the disk's path."""
    esp, root, disk = work / "esp.img", work / "root.img", work / "disk.img"
    for path in (esp, root, disk):
        path.unlink(missing_ok=True)
    # ESP: systemd-boot, the tree's kernel and initrd, one entry.
    with esp.open("wb") as f:
        f.truncate(ESP_SIZE)
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", str(esp)], log)
    mtools = ["-i", str(esp)]
    _run(["mmd", *mtools, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"], log)
    (work / "loader.conf").write_text(LOADER_CONF)
    (work / "debian.conf").write_text(ENTRY)
    for source, target in (
        (SYSTEMD_BOOT, "::/EFI/BOOT/BOOTX64.EFI"),
        (kernel, "::/vmlinuz"),
        (initrd, "::/initrd.img"),
        (work / "loader.conf", "::/loader/loader.conf"),
        (work / "debian.conf", "::/loader/entries/debian.conf"),
    ):
        _run(["mcopy", *mtools, str(source), target], log)
    # Root: the whole tree, with room to boot and log.
    root_size = -(-(_tree_bytes(tree) * 5 // 4 + 256 * MIB) // MIB) * MIB
    with root.open("wb") as f:
        f.truncate(root_size)
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-E", "root_owner=0:0", "-d", str(tree),
          str(root)], log)  # fmt: skip
    # GPT: 1 MiB alignment, the backup header in the last MiB.
    esp_start, root_start = MIB, MIB + ESP_SIZE
    with disk.open("wb") as f:
        f.truncate(root_start + root_size + MIB)
    script = (
        "label: gpt\n"
        f"start={esp_start // 512}, size={ESP_SIZE // 512}, type={ESP_TYPE}, name=esp\n"
        f"start={root_start // 512}, size={root_size // 512}, type={ROOT_TYPE}, name=root\n"
    )
    with log.open("a") as out:
        out.write(f"$ sfdisk {disk}\n{script}")
        out.flush()
        subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(disk)],
                       input=script.encode(), stdout=out, stderr=subprocess.STDOUT,
                       check=True)  # fmt: skip
    _copy_sparse(esp, disk, esp_start)
    _copy_sparse(root, disk, root_start)
    esp.unlink()
    root.unlink()
    return disk


def build_plain_image(
    work: Path, public_key: str, cache: Path, mirrors: tuple[str, ...] = DEFAULT_MIRRORS
) -> PlainImage:
    """Build the plain image in work (tree/, disk.img, plain.log)."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "plain.log"
    log.write_text("# plain Debian image\n")
    tree = work / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    started = time.monotonic()
    run_mmdebstrap(tree, cache, log, mirrors)
    mmdebstrap_seconds = time.monotonic() - started
    started = time.monotonic()
    configure_tree(tree, public_key, log)
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        raise RuntimeError(f"expected one kernel and one initrd in {tree}/boot")
    kernel, initrd = kernels[0], initrds[0]
    disk = make_disk(tree, kernel, initrd, work, log)
    status = (tree / "var/lib/dpkg/status").read_text()
    packages = sum(1 for line in status.splitlines() if line == "Status: install ok installed")
    return PlainImage(
        disk=disk,
        kernel=kernel,
        initrd=initrd,
        kernel_release=kernel.name.removeprefix("vmlinuz-"),
        packages=packages,
        tree_bytes=_tree_bytes(tree),
        mmdebstrap_seconds=mmdebstrap_seconds,
        image_seconds=time.monotonic() - started,
    )
