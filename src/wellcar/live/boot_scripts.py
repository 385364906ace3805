"""What the image's initrd carries for a live boot, and the live install unit.

A live boot (ISO or PXE, ``boot=wellcar-live`` on the command line) has no disk: the
initrd's ``mountroot`` opens the /usr image that arrived in RAM (an initrd archive, or a
download from ``wellcar.live.usr=``) through dm-verity with the root hash its trusted
part carries, mounts a tmpfs as /, fills it from the image's ``/etc`` defaults, and
places the first-boot flag, so Ignition runs from the usual sources. Archives appended to
the initrd put their files under :data:`LIVE_DIR` at the initramfs root:

- ``usr.verity``: ``USRHASH=`` and ``USROFFSET=`` of the build (in the live initrd);
- ``usr.img``: the /usr image (the /usr archive);
- ``config.ign``: an embedded live config, copied to ``/oem/config.ign`` of the live root
  (Ignition's OEM source, so a command-line or fw_cfg config still wins);
- ``install/``: ``install.env`` (the install arguments), ``ignition.ign`` and the
  install image: moved to :data:`INSTALL_STATE` and the install unit is started.

These files ship in every image (``wellcar.image.node_setup`` calls
:func:`install_live_boot`); a disk boot never runs them.
"""

from __future__ import annotations

from pathlib import Path

from .cmdline import LIVE_BOOT, USR_URL_WORD, USRHASH_WORD, USROFFSET_WORD

LIVE_DIR = "wellcar-live"  # at the initramfs root
VERITY_FILE = f"{LIVE_DIR}/usr.verity"
USR_FILE = f"{LIVE_DIR}/usr.img"
CONFIG_FILE = f"{LIVE_DIR}/config.ign"
INSTALL_DIR = f"{LIVE_DIR}/install"
INSTALL_ENV = "install.env"
INSTALL_IGNITION = "ignition.ign"
INSTALL_IMAGE = "disk.img.zst"
# Where the install files are in the live system (and the unit's condition).
INSTALL_STATE = "/run/wellcar-live/install"
# What the live system runs to install; the arguments come from install.env.
INSTALL_COMMAND = "/usr/bin/wellcar install"
LIVE_MARKER = "/run/wellcar-live/booted"  # "this is a live system", for tools and tests

INITRAMFS_HOOK = """#!/bin/sh
# Wellcar live boot: loop devices for the /usr image in RAM (boot script: wellcar-live).
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules loop dm-verity erofs
"""

LIVE_SCRIPT = r"""# Wellcar live boot (boot=@BOOT@): / is a tmpfs, /usr the verity image in RAM.
# Sourced by initramfs-tools' init after scripts/local and scripts/nfs.

mount_top() { :; }
mount_premount() { :; }
mount_bottom() { :; }

wellcar_live_usr() {
	image=/@USR_FILE@
	[ -f "$image" ] && return 0
	[ -n "$usr_url" ] || panic "wellcar-live: no /usr image in the initrd and no @URL_WORD@= URL"
	wait_for_udev 10
	configure_networking
	echo "wellcar-live: fetching /usr from $usr_url"
	wget -q -O "$image" "$usr_url" || panic "wellcar-live: cannot fetch $usr_url"
}

mountroot() {
	usrhash="" usroffset="" usr_url=""
	if [ -f /@VERITY_FILE@ ]; then
		. /@VERITY_FILE@
		usrhash="$USRHASH" usroffset="$USROFFSET"
	fi
	for word in $(cat /proc/cmdline); do
		case "$word" in
		@HASH_WORD@=*) usrhash="${word#@HASH_WORD@=}" ;;
		@OFFSET_WORD@=*) usroffset="${word#@OFFSET_WORD@=}" ;;
		@URL_WORD@=*) usr_url="${word#@URL_WORD@=}" ;;
		esac
	done
	[ -n "$usrhash" ] || panic "wellcar-live: no /usr root hash (@HASH_WORD@=)"
	mkdir -p /@LIVE_DIR@
	wellcar_live_usr
	modprobe -q loop
	modprobe -q dm-verity
	modprobe -q erofs
	# The image is a file in RAM; veritysetup attaches it to a read-only loop device.
	DM_DISABLE_UDEV=1 veritysetup open "$image" usr "$image" "$usrhash" \
		--hash-offset="${usroffset:-0}" ||
		panic "wellcar-live: dm-verity refuses the /usr image (root hash $usrhash)"
	mount -t tmpfs -o mode=0755 tmpfs "${rootmnt}" || panic "wellcar-live: no tmpfs for /"
	mkdir -p "${rootmnt}/usr"
	mount -t erofs -o ro /dev/mapper/usr "${rootmnt}/usr" ||
		panic "wellcar-live: cannot mount /usr (corrupt image)"
	wellcar_live_root
	echo "wellcar-live: /usr in RAM (dm-verity $usrhash)"
}

wellcar_live_root() {
	r="${rootmnt}"
	for dir in bin sbin lib lib32 lib64 libx32; do
		[ -d "$r/usr/$dir" ] && ln -s "usr/$dir" "$r/$dir"
	done
	mkdir -p "$r/proc" "$r/sys" "$r/dev" "$r/run" "$r/var" "$r/home" "$r/oem" "$r/boot" \
		"$r/mnt" "$r/media" "$r/srv" "$r/opt" "$r/tmp" "$r/root"
	chmod 1777 "$r/tmp"
	chmod 0700 "$r/root"
	cp -a "$r/usr/share/@BRAND@/etc-defaults" "$r/etc" ||
		panic "wellcar-live: the image has no /usr/share/@BRAND@/etc-defaults"
	# No disk is ours: nothing to mount, ROOT is not grown.
	echo "# @BRAND@ live system: / is a tmpfs, /usr the image in RAM" >"$r/etc/fstab"
	ln -sf /dev/null "$r/etc/systemd/system/@BRAND@-grow-root.service"
	# Homes of the image's users (useradd made them on the disk's ROOT, not in /etc).
	awk -F: '$6 ~ "^/home/" { print $3, $4, $6 }' "$r/etc/passwd" |
		while read -r uid gid home; do
			mkdir -p "$r$home"
			chown "$uid:$gid" "$r$home"
		done
	: >"$r/@FIRST_BOOT_FLAG@"
	if [ -f /@CONFIG_FILE@ ]; then
		cp /@CONFIG_FILE@ "$r/oem/config.ign"
		echo "wellcar-live: embedded Ignition config in /oem/config.ign"
	fi
	# /run is moved into the new root after mountroot, with this tmpfs on it (/run
	# itself is small): the install files live there.
	mkdir -p /run/wellcar-live
	mount -t tmpfs -o mode=0755 tmpfs /run/wellcar-live
	: >/run/wellcar-live/booted
	if [ -f /@INSTALL_DIR@/@INSTALL_ENV@ ]; then
		mv /@INSTALL_DIR@ @INSTALL_STATE@
		wants="$r/etc/systemd/system/multi-user.target.wants"
		mkdir -p "$wants"
		ln -s /usr/lib/systemd/system/@BRAND@-live-install.service "$wants/"
		echo "wellcar-live: unattended install configured"
	fi
}
"""


def render_live_script(brand_id: str, first_boot_flag: str) -> str:
    """The initramfs-tools boot script ``scripts/wellcar-live`` for this brand."""
    values = {
        "@BOOT@": LIVE_BOOT,
        "@USR_FILE@": USR_FILE,
        "@URL_WORD@": USR_URL_WORD,
        "@HASH_WORD@": USRHASH_WORD,
        "@OFFSET_WORD@": USROFFSET_WORD,
        "@VERITY_FILE@": VERITY_FILE,
        "@LIVE_DIR@": LIVE_DIR,
        "@CONFIG_FILE@": CONFIG_FILE,
        "@INSTALL_DIR@": INSTALL_DIR,
        "@INSTALL_ENV@": INSTALL_ENV,
        "@INSTALL_STATE@": INSTALL_STATE,
        "@FIRST_BOOT_FLAG@": first_boot_flag.lstrip("/"),
        "@BRAND@": brand_id,
    }
    text = LIVE_SCRIPT
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def render_install_unit(brand_id: str, brand_name: str) -> str:
    """The unit an unattended install runs: ``wellcar install`` with the customization's
    arguments, then a reboot into the installed system (the live medium's boot entry
    comes after the disk's in a firmware's order once the disk has one)."""
    return f"""[Unit]
Description={brand_name} unattended install from the live system
ConditionPathExists={INSTALL_STATE}/{INSTALL_ENV}
After={brand_id}-ignition.service
Before=getty.target

[Service]
Type=oneshot
EnvironmentFile={INSTALL_STATE}/{INSTALL_ENV}
WorkingDirectory={INSTALL_STATE}
ExecStart={INSTALL_COMMAND} $INSTALL_ARGS
ExecStartPost=/bin/echo "{brand_id}-live: installed, rebooting"
ExecStartPost=/usr/bin/systemctl --no-block reboot
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
"""


def install_unit_name(brand_id: str) -> str:
    return f"{brand_id}-live-install.service"


def render_install_env(device: str, with_ignition: bool) -> str:
    """``install.env``: the arguments of :data:`INSTALL_COMMAND`, Flatcar's flags; the
    paths are relative to :data:`INSTALL_STATE` (the unit's working directory)."""
    words = ["-d", device, "-f", INSTALL_IMAGE]
    if with_ignition:
        words += ["-i", INSTALL_IGNITION]
    return f'INSTALL_ARGS="{" ".join(words)}"\n'


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def install_live_boot(rootfs: Path, brand_id: str, brand_name: str, first_boot_flag: str) -> None:
    """Put the live boot's initramfs hook and boot script and the install unit (not
    enabled: the live initrd enables it) into the tree, before the initrd is made."""
    initramfs = rootfs / "usr/share/initramfs-tools"
    _write(initramfs / "hooks/wellcar-live", INITRAMFS_HOOK, 0o755)
    _write(initramfs / f"scripts/{LIVE_BOOT}", render_live_script(brand_id, first_boot_flag))
    unit = rootfs / "usr/lib/systemd/system" / install_unit_name(brand_id)
    _write(unit, render_install_unit(brand_id, brand_name))
