"""The boot contract: what the firmware and the initrd read, as data and pure functions.

Everything that names a /usr slot to the boot loader lives here, and nothing else renders
or parses it:

- the ESP's layout: systemd-boot, ``loader/loader.conf``, one kernel and initrd per slot
  (``EFI/<brand>/vmlinuz-a``) and one Boot Loader Specification Type #1 entry per slot;
- entry file names with systemd-boot's boot counters (``<brand>-b+3.conf``, ``+2-1``);
- a slot's kernel command line, rendered and parsed back: ``verity.usr=``,
  ``verity.usrhash=``, ``verity.usroffset=`` (the image's initrd opens /usr with them),
  ``mount.usr=`` without verity, and the ``wellcar.slot=`` hint;
- which slot a boot's command line (or a user's hint) names;
- GRUB's ``grub/grub.cfg`` and ``grub/grubenv`` on the ESP for BIOS machines, rendered
  from the same entries, with the tries left of each slot.

The image build writes the ESP with these functions, the agent rewrites entries with them;
the I/O (an FAT image, a mounted ESP) stays with each of them. See docs/disk.md.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cmp_to_key
from uuid import UUID

from .errors import BootedSlotUnknownError, BootEntryError, PartitionNotFoundError
from .gpt import Partition
from .layout import ROOT_LABEL, Slot
from .usr_verity import UsrVerity, is_hash_offset, is_root_hash

# ------------------------------------------------------------------------ the ESP

LOADER_ENTRIES = "loader/entries"
LOADER_CONF = "loader/loader.conf"
FALLBACK_LOADER = "EFI/BOOT/BOOTX64.EFI"  # what UEFI firmware boots from removable media
SYSTEMD_BOOT_LOADER = "EFI/systemd/systemd-bootx64.efi"


def esp_directories(brand: str) -> tuple[str, ...]:
    """Every directory of the ESP, parents first (FAT tools create them one by one)."""
    return ("EFI", "EFI/BOOT", "EFI/systemd", f"EFI/{brand}", GRUB_DIR, "loader", LOADER_ENTRIES)


@dataclass(frozen=True)
class SlotBootFiles:
    """Where a slot's kernel and initrd live, relative to the ESP's root."""

    kernel: str
    initrd: str


def slot_boot_files(brand: str, slot: Slot) -> SlotBootFiles:
    letter = slot.value.lower()
    return SlotBootFiles(f"EFI/{brand}/vmlinuz-{letter}", f"EFI/{brand}/initrd-{letter}")


def entry_path(esp_relative: str) -> str:
    """How an entry names a file on the ESP: absolute from the ESP's root."""
    return "/" + esp_relative.lstrip("/")


def render_loader_conf() -> str:
    """No ``default``: systemd-boot then boots the first entry in its order (sort-key,
    then newest version first, entries out of tries last), which is what lets the agent
    switch slots by writing entries alone. No menu wait either; a key press shows it."""
    return "timeout 0\nconsole-mode keep\n"


# ----------------------------------------------------------------- entry file names


@dataclass(frozen=True)
class BootEntryName:
    """What a boot entry's file name says: ``<brand>-<slot>[+LEFT[-DONE]].conf``."""

    slot: Slot
    tries_left: int | None  # None: no counter (blessed, or never counted)
    tries_done: int = 0


def boot_entry_file_name(
    brand: str, slot: Slot, tries_left: int | None = None, tries_done: int = 0
) -> str:
    """``wellcar-b+3.conf``: systemd-boot counts ``+3`` down on every boot of the entry and
    sorts it last once it reaches 0; without a counter the entry is final."""
    base = f"{brand}-{slot.value.lower()}"
    if tries_left is None:
        return f"{base}.conf"
    return f"{base}+{tries_left}-{tries_done}.conf" if tries_done else f"{base}+{tries_left}.conf"


def parse_boot_entry_file_name(brand: str, name: str) -> BootEntryName | None:
    """The slot and counters of one of ``brand``'s entry files; None for anything else."""
    match = re.fullmatch(
        rf"{re.escape(brand)}-(?P<slot>[ab])(?:\+(?P<left>\d+)(?:-(?P<done>\d+))?)?\.conf", name
    )
    if match is None:
        return None
    left = match.group("left")
    return BootEntryName(
        Slot(match.group("slot").upper()),
        int(left) if left is not None else None,
        int(match.group("done") or 0),
    )


# ------------------------------------------------------------- kernel command lines

# The kernel command line key that names the slot outright. Entries we write always carry
# it, so the booted slot is known even when /usr is a dm-verity device (/dev/mapper/usr).
SLOT_HINT_KEY = "wellcar.slot"
# Keys naming the /usr partition, in the order they are asked: the verity key first,
# because with dm-verity ``mount.usr=`` names /dev/mapper/usr, not a partition.
USR_PARTITION_KEYS = ("verity.usr", "mount.usr", "usr")
USR_HASH_KEYS = ("verity.usrhash", "usrhash")  # Wellcar's spelling, then systemd's/Flatcar's
VERITY_OFFSET_KEY = "verity.usroffset"

# Keys that describe which /usr a boot uses. They are replaced, never copied, when the
# command line of the running boot is reused for the other slot's entry.
SLOT_SPECIFIC_KEYS = frozenset(
    {
        "BOOT_IMAGE",
        "initrd",
        *USR_PARTITION_KEYS,
        *USR_HASH_KEYS,
        VERITY_OFFSET_KEY,
        "systemd.verity_usr_data",
        "systemd.verity_usr_hash",
        "systemd.verity_usr_options",  # hash-offset= of the running slot's tree
        # The running /usr's file system and mount flags: the other slot's /usr (a dm-verity
        # device, or another file system after an image change) need not share them.
        "mount.usrfstype",
        "mount.usrflags",
        SLOT_HINT_KEY,
    }
)

# What every entry of a built image boots with besides its /usr: the writable ROOT by
# label, a serial console, and ``panic=10`` so that a failing initrd reboots (and boot
# counting falls back) instead of waiting at a rescue shell. systemd's spellings of the
# verity keys (``usrhash=``, ``mount.usr=``) are left out on purpose: the booted system's
# systemd-veritysetup-generator would open the already open device again and fail a unit
# on every boot.
IMAGE_BASE_OPTIONS = (
    f"root=PARTLABEL={ROOT_LABEL}",
    "rootfstype=ext4",
    "rw",
    "console=ttyS0",
    "panic=10",
)


def kernel_cmdline_words(cmdline: str) -> list[str]:
    """The words of a kernel command line, unquoted, up to ``--`` (the rest is init's)."""
    try:
        words = shlex.split(cmdline)
    except ValueError:  # an unbalanced quote: the kernel copes, so do we
        words = cmdline.split()
    return words[: words.index("--")] if "--" in words else words


def parse_kernel_cmdline(cmdline: str) -> dict[str, str]:
    """``key=value`` words of a kernel command line (a bare word maps to ""); last one wins."""
    return {
        key: value for key, _, value in (w.partition("=") for w in kernel_cmdline_words(cmdline))
    }


def quote_kernel_word(word: str) -> str:
    """A word as the kernel reads it back: a value with spaces goes in double quotes."""
    key, sep, value = word.partition("=")
    if " " not in word:
        return word
    return f'{key}="{value}"' if sep else f'"{word}"'


def plain_usr_option(partuuid: UUID) -> str:
    """The word that mounts a /usr partition without verity (GRUB's and Flatcar's form)."""
    return f"mount.usr=PARTUUID={str(partuuid).lower()}"


def slot_kernel_options(
    slot: Slot,
    partuuid: UUID,
    *,
    verity: UsrVerity | None = None,
    base_options: Sequence[str] = (),
) -> tuple[str, ...]:
    """The kernel command line of ``slot``'s entry: ``base_options`` without any word that
    names a /usr, then this slot's /usr (through dm-verity when the payload said how).

    With verity the initrd opens the partition with the three ``verity.*`` keys (data and
    hash tree on the same partition, the tree at ``verity.usroffset``) and mounts the
    result; systemd's spellings are not written, so one initrd module decides.
    """
    kept = tuple(w for w in base_options if w.partition("=")[0] not in SLOT_SPECIFIC_KEYS)
    if verity is None:
        usr: tuple[str, ...] = (plain_usr_option(partuuid),)
    else:
        # UsrVerity checked both values; checked again because they end up in a file the
        # firmware trusts, and a malformed one must not reach it.
        if not is_root_hash(verity.root_hash):
            raise BootEntryError(f"root hash {verity.root_hash!r} is not 64 lowercase hex digits")
        if not is_hash_offset(verity.hash_offset):
            raise BootEntryError(f"verity hash offset {verity.hash_offset} is not valid")
        usr = (
            f"verity.usr=PARTUUID={partuuid}",
            f"verity.usrhash={verity.root_hash}",
            f"{VERITY_OFFSET_KEY}={verity.hash_offset}",
        )
    return (*kept, *usr, f"{SLOT_HINT_KEY}={slot.value.lower()}")


# Words a user (Ignition's ``kernelArguments``) may not add or remove: the boot contract
# sets them per slot, or the node would not find its /usr or ROOT.
RESERVED_KEYS = SLOT_SPECIFIC_KEYS | {"root", "rootfstype"}


def kernel_argument_conflict(argument: str) -> str | None:
    """Why a user's kernel argument may not be set or removed, or None when it may."""
    key = argument.partition("=")[0]
    if not argument.strip() or any(c.isspace() for c in argument.strip()):
        return f"{argument!r} is not one kernel argument (empty, or with white space)"
    if key in RESERVED_KEYS:
        return f"{key}= is set by the boot contract for each /usr slot and cannot be changed"
    return None


def apply_kernel_arguments(
    words: Sequence[str], *, should_exist: Sequence[str] = (), should_not_exist: Sequence[str] = ()
) -> tuple[str, ...]:
    """Ignition's ``kernelArguments`` on a command line: every ``should_not_exist`` word is
    removed (each occurrence), then each ``should_exist`` word missing is appended, in order.
    A word is compared whole (``nosmt`` and ``mitigations=off``), as Ignition does."""
    for argument in (*should_exist, *should_not_exist):
        problem = kernel_argument_conflict(argument)
        if problem is not None:
            raise BootEntryError(f"kernel argument {problem}")
    drop = set(should_not_exist)
    kept = [word for word in words if word not in drop]
    for argument in should_exist:
        if argument not in kept:
            kept.append(argument)
    return tuple(kept)


@dataclass(frozen=True)
class SlotUsr:
    """What a command line says about the /usr it boots (``slot_kernel_options`` read back)."""

    partuuid: UUID | None
    verity: UsrVerity | None
    slot_hint: Slot | None


def parse_slot_usr(cmdline: str) -> SlotUsr:
    """The /usr partition, verity parameters and slot hint of a command line; a malformed
    value is an error, an absent one is None."""
    arguments = parse_kernel_cmdline(cmdline)
    partuuid = partuuid_in_cmdline(cmdline)
    verity: UsrVerity | None = None
    root_hash, offset = arguments.get("verity.usrhash"), arguments.get(VERITY_OFFSET_KEY)
    if root_hash is not None or offset is not None:
        if root_hash is None or offset is None or not offset.isdigit():
            raise BootEntryError(
                f"the command line has verity.usrhash={root_hash} and "
                f"{VERITY_OFFSET_KEY}={offset}: both are needed, the offset in bytes"
            )
        verity = UsrVerity(root_hash, int(offset))
    hint = arguments.get(SLOT_HINT_KEY, "").strip().upper()
    return SlotUsr(partuuid, verity, Slot(hint) if hint in (Slot.A.value, Slot.B.value) else None)


def partuuid_in_cmdline(cmdline: str) -> UUID | None:
    """The PARTUUID the first /usr key names, if any."""
    arguments = parse_kernel_cmdline(cmdline)
    for key in USR_PARTITION_KEYS:
        value = arguments.get(key, "")
        if value.upper().startswith("PARTUUID="):
            with suppress(ValueError):
                return UUID(value[len("PARTUUID=") :])
    return None


# ------------------------------------------------------------------- boot entries


@dataclass(frozen=True)
class BootEntry:
    """One systemd-boot Type #1 entry (``loader/entries/*.conf``)."""

    title: str
    version: str
    linux: str  # path on the ESP, "/EFI/wellcar/vmlinuz-b"
    initrds: tuple[str, ...]  # loaded in order, concatenated (the live media append cpios)
    options: tuple[str, ...]  # kernel command line words
    sort_key: str | None = None


def slot_boot_entry(
    *,
    brand: str,
    title: str,
    version: str,
    slot: Slot,
    partuuid: UUID,
    verity: UsrVerity | None,
    base_options: Sequence[str],
    with_initrd: bool,
) -> BootEntry:
    """The entry that boots ``slot``: its kernel and initrd on the ESP, its /usr, and the
    brand as sort key so systemd-boot orders the two slots' entries by version."""
    files = slot_boot_files(brand, slot)
    return BootEntry(
        title=f"{title} {version} ({slot.label})",
        version=version,
        linux=entry_path(files.kernel),
        initrds=(entry_path(files.initrd),) if with_initrd else (),
        options=slot_kernel_options(slot, partuuid, verity=verity, base_options=base_options),
        sort_key=brand,
    )


def render_boot_entry(entry: BootEntry) -> str:
    """The entry file's text. Refuses control characters: a version string from an update
    server must not be able to add an ``options`` line of its own."""
    fields = [("title", entry.title), ("version", entry.version)]
    if entry.sort_key:
        fields.append(("sort-key", entry.sort_key))
    fields.append(("linux", entry.linux))
    fields += [("initrd", initrd) for initrd in entry.initrds]
    if entry.options:
        fields.append(("options", " ".join(quote_kernel_word(w) for w in entry.options)))
    for name, value in fields:
        if not value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise BootEntryError(f"boot entry {name} {value!r} is empty or has control characters")
    return "".join(f"{name} {value}\n" for name, value in fields)


def parse_boot_entry(text: str) -> BootEntry:
    """An entry file read back (ours or another writer's): several ``options`` lines join,
    as systemd-boot joins them."""
    values: dict[str, str] = {}
    options: list[str] = []
    initrds: list[str] = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if not key or key.startswith("#"):
            continue
        if key == "options":
            options.extend(kernel_cmdline_words(value))
        elif key == "initrd":
            initrds.append(value.strip())
        else:
            values.setdefault(key, value.strip())
    missing = [key for key in ("title", "linux") if not values.get(key)]
    if missing:
        raise BootEntryError(f"the boot entry has no {' or '.join(missing)} line")
    return BootEntry(
        title=values["title"],
        version=values.get("version", ""),
        linux=values["linux"],
        initrds=tuple(initrds),
        options=tuple(options),
        sort_key=values.get("sort-key"),
    )


def entry_usrhash(text: str) -> str | None:
    """The root hash an entry file boots with (``verity.usrhash=``, or ``usrhash=`` of older
    entries), lowercased; None when it boots /usr without verity or cannot be read."""
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key != "options":
            continue
        arguments = parse_kernel_cmdline(value)
        for name in USR_HASH_KEYS:
            digest = arguments.get(name, "").strip().lower()
            if digest:
                return digest
    return None


# ------------------------------------------------------------- which slot booted

_DEVICE_NUMBER = re.compile(r"^/dev/\S*?\D(\d+)$")


def _slot_by_uuid(value: str, partitions: Sequence[Partition]) -> Slot | None:
    try:
        wanted = UUID(value)
    except ValueError:
        return None
    for slot in Slot:
        actual = next(
            (p.unique_guid for p in partitions if p.number == slot.partition_number),
            slot.partition_uuid,
        )
        if wanted == actual:
            return slot
    return None


def _slot_from_value(value: str, partitions: Sequence[Partition]) -> Slot | None:
    """A single reference to a partition: slot name, label, PARTUUID or device path."""
    upper = value.strip().upper()
    for slot in Slot:
        if upper in (slot.value, slot.label):
            return slot
    for prefix in ("PARTLABEL=", "/DEV/DISK/BY-PARTLABEL/"):
        if upper.startswith(prefix):
            return _slot_from_value(value.strip()[len(prefix) :], partitions)
    for prefix in ("PARTUUID=", "/DEV/DISK/BY-PARTUUID/"):
        if upper.startswith(prefix):
            return _slot_by_uuid(value.strip()[len(prefix) :], partitions)
    by_uuid = _slot_by_uuid(value.strip(), partitions)
    if by_uuid is not None:
        return by_uuid
    device = _DEVICE_NUMBER.match(value.strip())
    if device:
        number = int(device.group(1))
        return next((slot for slot in Slot if slot.partition_number == number), None)
    return None


def slot_from_boot_hint(hint: str, partitions: Sequence[Partition] = ()) -> Slot:
    """The slot a hint names: ``A``/``B``, ``USR-A``, a PARTUUID, ``/dev/vda4``, or a whole
    kernel command line. ``partitions`` (from the GPT) let PARTUUIDs other than Flatcar's
    fixed ones match; without them the fixed ones are used."""
    arguments = parse_kernel_cmdline(hint)
    for key in USR_PARTITION_KEYS:
        if key in arguments:
            found = _slot_from_value(arguments[key], partitions)
            if found is not None:
                return found
    found = _slot_from_value(hint, partitions)
    if found is not None:
        return found
    raise PartitionNotFoundError(
        f"boot hint {hint!r} does not name a /usr slot: give A or B, USR-A or USR-B, a "
        "PARTUUID, a device such as /dev/vda3, or a kernel command line with mount.usr="
    )


def booted_slot_from_cmdline(
    cmdline: str,
    partitions: Sequence[Partition] = (),
    usrhash_slots: Mapping[str, Slot] | None = None,
) -> Slot:
    """The slot a boot's kernel command line names.

    In order: ``verity.usr=`` / ``mount.usr=`` / ``usr=`` naming a partition (PARTUUID,
    PARTLABEL, device; ``partitions`` let other than Flatcar's fixed PARTUUIDs match), the
    ``wellcar.slot=a|b`` hint, then ``verity.usrhash=`` / ``usrhash=`` looked up in
    ``usrhash_slots`` (the digests of our own boot entries).
    """
    arguments = parse_kernel_cmdline(cmdline)
    for key in USR_PARTITION_KEYS:
        value = arguments.get(key)
        if value:
            # /dev/mapper/usr names no partition: try the next key rather than give up.
            with suppress(PartitionNotFoundError):
                return slot_from_boot_hint(value, partitions)
    hint = arguments.get(SLOT_HINT_KEY, "").strip().upper()
    if hint in (Slot.A.value, Slot.B.value):
        return Slot(hint)
    for key in USR_HASH_KEYS:
        usrhash = arguments.get(key, "").strip().lower()
        if usrhash and usrhash_slots and usrhash in usrhash_slots:
            return usrhash_slots[usrhash]
    raise BootedSlotUnknownError(
        f"the kernel command line names no /usr slot (no verity.usr= or mount.usr=PARTUUID=, "
        f"{SLOT_HINT_KEY}=a|b or known verity.usrhash=): {cmdline.strip()!r}"
    )


# ------------------------------------------------------- GRUB on BIOS machines
#
# A BIOS machine boots GRUB (core.img in BIOS-BOOT, its prefix on the ESP), which reads a
# grub.cfg rendered from the same entries as systemd-boot's and counts tries in a grubenv
# next to it. GRUB script has no arithmetic: a counter goes down by string comparison,
# one branch per value up to GRUB_MAX_TRIES. See docs/bios.md.

GRUB_DIR = "grub"
GRUB_CFG = f"{GRUB_DIR}/grub.cfg"
GRUBENV = f"{GRUB_DIR}/grubenv"
# core.img's prefix: "(,gpt1)" is partition 1 (the ESP) of the disk GRUB was loaded from,
# whatever BIOS drive number that disk has.
GRUB_PREFIX = f"(,gpt1)/{GRUB_DIR}"
GRUB_MAX_TRIES = 5
GRUBENV_SIZE = 1024  # GRUB rewrites the block in place: the file keeps exactly this size
_GRUBENV_HEADER = "# GRUB Environment Block\n"
# Characters a GRUB word may have without quotes.
_GRUB_PLAIN = re.compile(r"[A-Za-z0-9_./:=,+@%-]+")


def grub_counter(slot: Slot) -> str:
    """The grubenv variable counting ``slot``'s tries left (absent or empty: no counter)."""
    return f"tries_left_{slot.value.lower()}"


def grub_entry_id(brand: str, slot: Slot) -> str:
    return f"{brand}-{slot.value.lower()}"


def grub_quote(word: str) -> str:
    """A word as GRUB script reads it back: single quotes unless plainly safe."""
    if _GRUB_PLAIN.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def _version_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Close to systemd's strverscmp_improved for the versions we write: runs of digits
    compare as numbers, other runs as text, ``~`` before anything."""
    parts = []
    for run in re.findall(r"\d+|[^\d]+", text):
        if run.isdigit():
            parts.append((1, int(run), ""))
        else:
            parts.append((0 if run.startswith("~") else 2, 0, run))
    return tuple(parts)


@dataclass(frozen=True)
class SlotEntry:
    """One slot's entry as a boot loader orders it: the entry and its file's name."""

    slot: Slot
    file_name: str
    entry: BootEntry


def _entry_id(brand: str, item: SlotEntry) -> str:
    """systemd-boot's id of an entry: its file name without the counter."""
    return boot_entry_file_name(brand, item.slot)


def systemd_boot_order(brand: str, items: Sequence[SlotEntry]) -> list[SlotEntry]:
    """Entries in systemd-boot's order, before it moves entries out of tries last: with a
    sort key first, by sort key, newest version first, then by id (descending)."""

    def compare(a: SlotEntry, b: SlotEntry) -> int:
        x, y = a.entry, b.entry
        if (x.sort_key is None) != (y.sort_key is None):
            return 1 if x.sort_key is None else -1
        if x.sort_key and y.sort_key:
            if x.sort_key != y.sort_key:
                return -1 if x.sort_key < y.sort_key else 1
            vx, vy = _version_key(x.version), _version_key(y.version)
            if vx != vy:
                return 1 if vx < vy else -1
        ix, iy = _version_key(_entry_id(brand, a)), _version_key(_entry_id(brand, b))
        return 0 if ix == iy else (1 if ix < iy else -1)

    return sorted(items, key=cmp_to_key(compare))


def render_grub_cfg(brand: str, items: Sequence[SlotEntry]) -> str:
    """GRUB's configuration for the entries: the first in systemd-boot's order whose
    counter is not 0 boots (all out of tries: the first), its counter goes down by one
    and is saved before the kernel loads; the other entries are GRUB's fallback."""
    if not items:
        raise BootEntryError("GRUB needs at least one boot entry")
    ordered = systemd_boot_order(brand, items)
    slots = [item.slot for item in ordered]
    if len(set(slots)) != len(slots):
        raise BootEntryError("GRUB's configuration takes one entry per slot")
    counters = " ".join(grub_counter(slot) for slot in slots)
    lines = [
        "# Rendered by Wellcar from the boot entries (wellcar.disk.boot_entries): do not edit.",
        "set timeout=0",
        "serial --unit=0 --speed=115200",
        "terminal_input serial console",
        "terminal_output serial console",
        f"load_env --file $prefix/grubenv {counters}",
        'set default=""',
    ]
    for slot in slots:
        ident = grub_entry_id(brand, slot)
        lines += [
            'if [ -z "$default" ]; then',
            f'  if [ "${grub_counter(slot)}" != 0 ]; then set default={ident}; fi',
            "fi",
        ]
    first = grub_entry_id(brand, slots[0])
    lines.append(f'if [ -z "$default" ]; then set default={first}; fi')
    for slot in slots:
        ident, counter = grub_entry_id(brand, slot), grub_counter(slot)
        lines.append(f'if [ "$default" = {ident} ]; then')
        for left in range(GRUB_MAX_TRIES, 0, -1):
            keyword = "if" if left == GRUB_MAX_TRIES else "elif"
            lines.append(f'  {keyword} [ "${counter}" = {left} ]; then')
            lines.append(f"    set {counter}={left - 1}")
            lines.append(f"    save_env --file $prefix/grubenv {counter}")
        lines += ["  fi", "fi"]
    for slot in slots:
        others = " ".join(grub_entry_id(brand, s) for s in slots if s is not slot)
        if others:
            ident = grub_entry_id(brand, slot)
            lines.append(f'if [ "$default" = {ident} ]; then set fallback="{others}"; fi')
    for item in ordered:
        entry, ident = item.entry, grub_entry_id(brand, item.slot)
        render_boot_entry(entry)  # the same refusals as systemd-boot's entries
        linux = " ".join(grub_quote(w) for w in (entry.linux, *entry.options))
        lines += [
            f"menuentry {grub_quote(entry.title)} --id {ident} {{",
            f"  echo {grub_quote(f'{brand}: GRUB boots {ident}')}",
            f"  linux {linux}",
        ]
        if entry.initrds:
            lines.append(f"  initrd {' '.join(grub_quote(i) for i in entry.initrds)}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def render_grubenv(counters: Mapping[Slot, int | None]) -> bytes:
    """The grubenv file: each counted slot's tries left; a slot without one is absent."""
    body = _GRUBENV_HEADER
    for slot in Slot:
        left = counters.get(slot)
        if left is None:
            continue
        if not 0 <= left <= GRUB_MAX_TRIES:
            raise BootEntryError(
                f"GRUB counts at most {GRUB_MAX_TRIES} tries, not {left} (slot {slot})"
            )
        body += f"{grub_counter(slot)}={left}\n"
    return (body + "#" * (GRUBENV_SIZE - len(body))).encode("ascii")


def parse_grubenv(data: bytes) -> dict[str, str]:
    """The variables of a grubenv file; a file GRUB would not read is an error."""
    text = data.decode("utf-8", errors="replace")
    if not text.startswith(_GRUBENV_HEADER) or len(data) != GRUBENV_SIZE:
        raise BootEntryError(
            f"not a GRUB environment block ({len(data)} bytes, {GRUBENV_SIZE} expected, "
            "starting with its header)"
        )
    values: dict[str, str] = {}
    for line in text[len(_GRUBENV_HEADER) :].split("\n"):
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep:
            values[name] = value
    return values


def grubenv_tries_left(values: Mapping[str, str]) -> dict[Slot, int | None]:
    """Each slot's counter in a grubenv's variables; None when it has none (blessed, or
    never counted) or one GRUB would not count down."""
    found: dict[Slot, int | None] = {}
    for slot in Slot:
        value = values.get(grub_counter(slot), "")
        found[slot] = int(value) if value.isdigit() and int(value) <= GRUB_MAX_TRIES else None
    return found


def grub_cfg_for_entry_files(brand: str, files: Mapping[str, str]) -> str | None:
    """GRUB's configuration for the entry files of a loader/entries directory (name to
    text): ``brand``'s entries, the first of each slot by name; one that does not parse
    is left out (neither loader could boot it). None when no entry is left."""
    found: list[SlotEntry] = []
    for name in sorted(files):
        parsed = parse_boot_entry_file_name(brand, name)
        if parsed is None or any(item.slot is parsed.slot for item in found):
            continue
        with suppress(BootEntryError):
            found.append(SlotEntry(parsed.slot, name, parse_boot_entry(files[name])))
    return render_grub_cfg(brand, found) if found else None


def entry_file_brand(name: str) -> str | None:
    """The brand of a slot entry's file name (``wellcar`` of ``wellcar-b+1.conf``), for
    tools that rewrite an image's entries without knowing its brand."""
    match = re.fullmatch(r"(?P<brand>.+)-[ab](?:\+\d+(?:-\d+)?)?\.conf", name)
    return match.group("brand") if match else None
