"""What turns a Debian rootfs into a Wellcar node: boot from a verity /usr, first-boot
set-up, networking and the update agent.

- An initramfs-tools hook and ``local-bottom`` script that open the boot entry's /usr slot
  with dm-verity (``verity.usr=``, ``verity.usrhash=``, ``verity.usroffset=``) and mount it
  read-only on the new root's ``/usr``; the initrd is regenerated with them.
- Units: first-boot provisioning (Ignition configs, docs/ignition.md); the agent; copying
  missing ``/etc`` defaults from ``/usr`` (the first-boot set early, the factory defaults
  after provisioning: ``etc_defaults.py``); growing ROOT to the
  disk on first boot; ssh host keys made on the machine (Ed25519 and ECDSA only), never
  shipped in the image.
- Flatcar's ``core`` user and passwordless sudo (``users.py``).
- systemd-networkd with DHCP on every Ethernet link; the ESP on ``/boot`` and OEM on
  ``/oem``; systemd-bless-boot masked, because the agent blesses a boot entry only after
  the health checks pass (docs/image.md, "Boot and A/B").
"""

from __future__ import annotations

from pathlib import Path

from wellcar.disk.boot_entries import USR_HASH_KEYS, USR_PARTITION_KEYS, VERITY_OFFSET_KEY
from wellcar.live.boot_scripts import install_live_boot
from wellcar.metadata.unit import render_unit as render_metadata_unit
from wellcar.metadata.unit import unit_name as metadata_unit_name

from .errors import ImageContentError
from .etc_defaults import ETC_FACTORY_TMPFILES
from .settings import BuildSettings
from .tools import run_tool
from .users import install_core_user

INITRAMFS_HOOK = """#!/bin/sh
# Wellcar: what the initrd needs to mount a dm-verity /usr (see local-bottom/wellcar-usr).
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
copy_exec /usr/sbin/veritysetup /sbin
manual_add_modules dm-verity erofs
"""

INITRAMFS_MOUNT_USR = """#!/bin/sh
# Wellcar: mount the boot entry's /usr slot read-only on ${rootmnt}/usr, through dm-verity
# when the entry names a root hash. Any failure reboots (panic= on the command line), so
# systemd-boot's boot counting can fall back to the other slot.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /scripts/functions

{usr_cmdline_reader}
[ -n "$usr" ] || exit 0

case "$usr" in
PARTUUID=*) dev="/dev/disk/by-partuuid/$(echo "${usr#PARTUUID=}" | tr A-F a-f)" ;;
PARTLABEL=*) dev="/dev/disk/by-partlabel/${usr#PARTLABEL=}" ;;
*) dev="$usr" ;;
esac
tries=0
while [ ! -b "$dev" ] && [ "$tries" -lt 30 ]; do
	sleep 1
	tries=$((tries + 1))
done
[ -b "$dev" ] || panic "wellcar: the /usr partition $usr did not appear"
modprobe -q erofs
if [ -n "$usrhash" ]; then
	modprobe -q dm-verity
	# Without udev rules for device-mapper in the initrd, libdevmapper makes the node.
	DM_DISABLE_UDEV=1 veritysetup open "$dev" usr "$dev" "$usrhash" \\
		--hash-offset="${usroffset:-0}" ||
		panic "wellcar: dm-verity cannot open /usr on $usr with root hash $usrhash"
	dev=/dev/mapper/usr
fi
mount -t erofs -o ro "$dev" "${rootmnt}/usr" ||
	panic "wellcar: cannot mount /usr from $dev (corrupt or wrong root hash)"
echo "wellcar: /usr is $usr${usrhash:+ (dm-verity $usrhash)}"
"""


def usr_cmdline_reader(cmdline_file: str = "/proc/cmdline") -> str:
    """Shell that sets ``usr``, ``usrhash`` and ``usroffset`` from a kernel command line
    as ``wellcar.disk.boot_entries`` writes it (the key names come from there): the
    verity partition key, else the plain ``mount.usr=`` one."""
    verity_usr, plain_usr = USR_PARTITION_KEYS[0], USR_PARTITION_KEYS[1]
    usrhash = USR_HASH_KEYS[0]  # systemd's usrhash= is its own generator's, not ours
    arms = [(verity_usr, "usr"), (usrhash, "usrhash"), (VERITY_OFFSET_KEY, "usroffset"),
            (plain_usr, "plain")]  # fmt: skip
    lines = ['usr="" usrhash="" usroffset="" plain=""', f"for word in $(cat {cmdline_file}); do",
             '\tcase "$word" in']  # fmt: skip
    lines += [f'\t{key}=*) {var}="${{word#{key}=}}" ;;' for key, var in arms]
    lines += ["\tesac", "done", '[ -n "$usr" ] || usr="$plain"']
    return "\n".join(lines)


def render_mount_usr_script() -> str:
    return INITRAMFS_MOUNT_USR.replace("{usr_cmdline_reader}", usr_cmdline_reader())


GROW_ROOT = """#!/bin/sh
# Wellcar: grow ROOT (and its ext4) to the end of its disk, once.
set -eu
part=$(readlink -f /dev/disk/by-partlabel/ROOT)
name=${part##*/}
disk=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
number=$(cat "/sys/class/block/$name/partition")
status=0
growpart "$disk" "$number" || status=$?
[ "$status" -le 1 ] || exit "$status"  # 1: nothing to grow
resize2fs "$part"
mkdir -p "$1"
touch "$1/root-grown"
"""

DHCP_NETWORK = """# Wellcar: DHCP on every Ethernet link (override in /etc/systemd/network).
[Match]
Type=ether

[Network]
DHCP=yes
"""


def render_fstab() -> str:
    return (
        "# Wellcar: / is ROOT; /usr is mounted by the initrd from the booted slot.\n"
        "# The ESP is FAT, without a journal: it is checked (fsck.fat -a) before each mount,\n"
        "# so a power cut while the agent wrote it cannot leave it unreadable.\n"
        "PARTLABEL=ROOT / ext4 defaults 0 1\n"
        "PARTLABEL=EFI-SYSTEM /boot vfat umask=0077,nofail 0 2\n"
        "PARTLABEL=OEM /oem ext4 defaults,nofail 0 0\n"
    )


FIRST_BOOT_FLAG = "etc/.wellcar-first-boot"

# The host key types made on first boot, and the only ones sshd is told to load. RSA is
# left out: making a 3072-bit key took 26 s of a 47 s first boot under TCG, and every
# OpenSSH client since 6.5 (2014) speaks Ed25519; ECDSA (milliseconds to make) is there
# for the few clients that do not.
SSH_HOST_KEY_TYPES: tuple[str, ...] = ("ed25519", "ecdsa")
SSHD_HOST_KEYS_DROPIN = "etc/ssh/sshd_config.d/host-keys.conf"


def host_key_path(key_type: str) -> str:
    return f"/etc/ssh/ssh_host_{key_type}_key"


def render_sshd_host_keys() -> str:
    lines = "".join(f"HostKey {host_key_path(t)}\n" for t in SSH_HOST_KEY_TYPES)
    return f"# Wellcar: the host keys made on first boot (docs/image.md).\n{lines}"


def _missing_host_key_conditions() -> str:
    # "|": the unit runs when any of the keys is missing.
    return "\n".join(f"ConditionPathExists=|!{host_key_path(t)}" for t in SSH_HOST_KEY_TYPES)


def _keygen_script() -> str:
    # ssh-keygen asks before overwriting; only missing keys are made.
    steps = [f"[ -e {host_key_path(t)} ] || ssh-keygen -q -t {t} -N \"\" -f {host_key_path(t)}"
             for t in SSH_HOST_KEY_TYPES]  # fmt: skip
    return "set -e; " + "; ".join(steps)


def brand_domain(settings: BuildSettings) -> str:
    """The reverse-DNS name of the brand's QEMU fw_cfg key (``opt/<domain>/config``), as
    Flatcar's is ``org.flatcar-linux``."""
    return f"org.{settings.brand.id}-linux"


def render_units(settings: BuildSettings) -> dict[str, str]:
    brand = settings.brand
    share, state = f"/usr/share/{brand.id}", f"/var/lib/{brand.id}"
    python = "Environment=PYTHONPATH=/usr/lib/wellcar/python"
    return {
        f"{brand.id}-ignition.service": f"""[Unit]
Description={brand.name} first-boot provisioning (Ignition)
ConditionPathExists=/{FIRST_BOOT_FLAG}
After=oem.mount boot.mount network-online.target
Wants=network-online.target
Before=multi-user.target systemd-user-sessions.service ssh.service getty.target
Before={brand.id}-agent.service {brand.id}-etc-factory.service docker.service containerd.service
OnFailure=emergency.target
OnFailureJobMode=replace-irreversibly

[Service]
Type=oneshot
RemainAfterExit=yes
{python}
ExecStart=/usr/bin/python3 -m wellcar.ignition first-boot --root / \
    --brand-domain {brand_domain(settings)} --flag /{FIRST_BOOT_FLAG} --oem-dir /oem \
    --brand {brand.id} --esp /boot
# systemd read /etc/hostname before provisioning: a config's name applies in this boot,
# before the units the config enabled start.
ExecStartPost=-/bin/sh -c '[ ! -s /etc/hostname ] || hostname -F /etc/hostname'
# Units and links the config wrote are loaded, and the default target queued again, so
# the units it enabled start in this same boot. ("-": when kernel arguments made the
# node reboot, the reboot job refuses this start, which is no failure.)
ExecStartPost=/usr/bin/systemctl daemon-reload
ExecStartPost=-/usr/bin/systemctl --no-block start default.target
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=15min

[Install]
WantedBy=multi-user.target
""",
        f"{brand.id}-agent.service": f"""[Unit]
Description={brand.name} update agent
After=network-online.target
Wants=network-online.target

[Service]
{python}
ExecStart=/usr/bin/python3 -m wellcar.agent run --brand {brand.id}
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
""",
        f"{brand.id}-etc-defaults.service": f"""[Unit]
Description=Copy missing /etc files from {share}/etc-defaults
DefaultDependencies=no
Before=sysinit.target systemd-sysusers.service systemd-tmpfiles-setup.service
ConditionDirectoryNotEmpty={share}/etc-defaults

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/cp -a --no-clobber {share}/etc-defaults/. /etc/

[Install]
WantedBy=sysinit.target
""",
        f"{brand.id}-etc-factory.service": f"""[Unit]
Description=Fill gaps in /etc from /usr/share/factory/etc, after provisioning
After={brand.id}-ignition.service local-fs.target
Before=multi-user.target systemd-user-sessions.service ssh.service getty.target
Before={brand.id}-agent.service docker.service containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/systemd-tmpfiles --create /{ETC_FACTORY_TMPFILES}

[Install]
WantedBy=multi-user.target
""",
        f"{brand.id}-grow-root.service": f"""[Unit]
Description=Grow ROOT to fill the disk
ConditionPathExists=!{state}/root-grown
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/lib/wellcar/grow-root {state}

[Install]
WantedBy=multi-user.target
""",
        f"{brand.id}-sshd-keygen.service": f"""[Unit]
Description=Generate this machine's ssh host keys ({", ".join(SSH_HOST_KEY_TYPES)})
Before=ssh.service
# /etc/ssh comes from the factory defaults on the first boot.
After={brand.id}-etc-factory.service
{_missing_host_key_conditions()}

[Service]
Type=oneshot
ExecStart=/bin/sh -c '{_keygen_script()}'

[Install]
WantedBy=ssh.service
""",
        # Platform images only (its conditions): hostname, ssh keys, /run/metadata/flatcar.
        metadata_unit_name(brand.id): render_metadata_unit(
            brand.id, brand.name, "/usr/lib/wellcar/python"
        ),
    }


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def install_node_setup(rootfs: Path, settings: BuildSettings, log: Path | None) -> list[str]:
    """Write the files, enable the units; returns the unit names enabled."""
    initramfs = rootfs / "usr/share/initramfs-tools"
    _write(initramfs / "hooks/wellcar-usr", INITRAMFS_HOOK, 0o755)
    _write(initramfs / "scripts/local-bottom/wellcar-usr", render_mount_usr_script(), 0o755)
    # The live ISO / PXE boot (docs/live.md): dormant unless boot=wellcar-live.
    install_live_boot(rootfs, settings.brand.id, settings.brand.name, FIRST_BOOT_FLAG)
    _write(rootfs / "usr/lib/wellcar/grow-root", GROW_ROOT, 0o755)
    _write(rootfs / "usr/lib/systemd/network/80-wellcar-dhcp.network", DHCP_NETWORK)
    units = render_units(settings)
    for name, text in units.items():
        _write(rootfs / "usr/lib/systemd/system" / name, text)
    fstab = rootfs / "etc/fstab"
    fstab.unlink(missing_ok=True)
    _write(fstab, render_fstab())
    (rootfs / "oem").mkdir(exist_ok=True)
    # Every machine makes its own identity: no shared ssh host keys or machine id.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    machine_id = rootfs / "etc/machine-id"
    machine_id.unlink(missing_ok=True)
    machine_id.write_text("", encoding="ascii")
    _write(rootfs / SSHD_HOST_KEYS_DROPIN, render_sshd_host_keys())
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    install_core_user(rootfs, settings.epoch, log)
    enabled = [*units, "systemd-networkd.service"]
    run_tool("node-setup", ["systemctl", f"--root={rootfs}", "enable", *enabled], log=log)
    run_tool("node-setup", ["systemctl", f"--root={rootfs}", "mask",
                            "systemd-bless-boot.service"], log=log)  # fmt: skip
    return enabled


def place_first_boot_flag(rootfs: Path) -> None:
    """After the /etc defaults are captured: the flag must not come back from them once
    provisioning removed it."""
    _write(rootfs / FIRST_BOOT_FLAG, "")


def regenerate_initrd(rootfs: Path, log: Path | None) -> Path:
    """Run update-initramfs in the rootfs (in a private mount namespace with /proc and
    /dev, so nothing stays mounted if the build dies); returns the new initrd."""
    kernels = sorted(p.name for p in (rootfs / "usr/lib/modules").iterdir() if p.is_dir())
    if not kernels:
        raise ImageContentError("node-setup", f"no kernel modules in {rootfs}/usr/lib/modules")
    version = kernels[-1]
    script = (
        'set -e; r="$1"; mount -t proc proc "$r/proc"; mount --rbind /dev "$r/dev"; '
        'chroot "$r" update-initramfs -c -k "$2"'
    )
    (rootfs / "boot" / f"initrd.img-{version}").unlink(missing_ok=True)
    run_tool("node-setup", ["unshare", "--mount", "--propagation", "private", "--fork",
                            "sh", "-c", script, "sh", str(rootfs), version],
             log=log)  # fmt: skip
    initrd = rootfs / "boot" / f"initrd.img-{version}"
    if not initrd.is_file():
        raise ImageContentError("node-setup", f"update-initramfs made no {initrd}")
    return initrd
