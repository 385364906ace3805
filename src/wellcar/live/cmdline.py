"""The live (ISO and PXE) kernel command line, in one function so it can join the other
boot entries' command lines later.

The words the live initrd reads (``boot_scripts.LIVE_SCRIPT``):

- ``boot=wellcar-live``: initramfs-tools runs our ``mountroot`` instead of its local-disk
  one (no ROOT partition: / is a tmpfs, /usr the verity image in RAM);
- ``wellcar.live.usrhash=`` / ``wellcar.live.usroffset=``: the /usr verity root hash and
  hash-area offset; optional, the live initrd carries the values of its build;
- ``wellcar.live.usr=URL``: fetch /usr over HTTP when no initrd carries it (PXE);
- ``ignition.platform.id=metal`` and ``ignition.config.url=``, as Flatcar's PXE and ISO.
"""

from __future__ import annotations

LIVE_BOOT = "wellcar-live"  # initramfs-tools' boot=: /scripts/wellcar-live in the initrd
USRHASH_WORD = "wellcar.live.usrhash"
USROFFSET_WORD = "wellcar.live.usroffset"
USR_URL_WORD = "wellcar.live.usr"
CONFIG_URL_WORD = "ignition.config.url"
PLATFORM_WORD = "ignition.platform.id"
LIVE_PLATFORM = "metal"  # Flatcar's platform id for ISO, PXE and installed bare metal
# The serial console last: it becomes /dev/console, where the initrd and systemd write.
CONSOLES: tuple[str, ...] = ("tty0", "ttyS0,115200n8")


def live_kernel_command_line(
    *,
    config_url: str | None = None,
    usr_url: str | None = None,
    usrhash: str | None = None,
    usroffset: int | None = None,
    platform: str = LIVE_PLATFORM,
) -> str:
    """The command line of a live boot. ``panic=10``: a live boot that cannot mount /usr
    reboots (a PXE machine then asks its server again) instead of waiting at a shell."""
    words = [f"boot={LIVE_BOOT}"]
    if usrhash is not None:
        words.append(f"{USRHASH_WORD}={usrhash}")
    if usroffset is not None:
        words.append(f"{USROFFSET_WORD}={usroffset}")
    if usr_url is not None:
        words.append(f"{USR_URL_WORD}={usr_url}")
    words.append(f"{PLATFORM_WORD}={platform}")
    if config_url is not None:
        words.append(f"{CONFIG_URL_WORD}={config_url}")
    for word in words:
        if any(c.isspace() for c in word):
            raise ValueError(f"kernel command line word {word!r} contains white space")
    words += [f"console={c}" for c in CONSOLES]
    words += ["panic=10"]
    return " ".join(words)
