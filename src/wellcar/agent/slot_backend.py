"""The machine's A/B slots and boot, as the update agent sees them.

:class:`SlotBackend` is everything the agent needs from the node: the slot table (GPT
gptprio bits + slot-status file), which slot is running, where an update's /usr, kernel
and initrd go, the boot id, boot-loader entries and the reboot itself. Two backends:

- :class:`FileSlotBackend`: a whole node on a disk image *file*, for tests and the
  end-to-end test. "Booting" is GRUB's ``gptprio.next`` (:meth:`SlotTable.boot_next`),
  done by :meth:`FileSlotBackend.power_on`; :meth:`FileSlotBackend.reboot` only records
  the request and calls a callback, so the harness decides when the "machine" comes back.
- :class:`BlockDeviceSlotBackend`: the real machine. It finds the disk holding USR-A and
  USR-B, reads and writes its GPT through :class:`BlockDeviceGpt`, learns the booted slot
  from ``/proc/cmdline``, puts kernels and systemd-boot entries (with boot counting) on the
  ESP and reboots with ``systemctl reboot``.

The pure parts (kernel command line, ``lsblk`` output, boot entry text and file names) are
plain functions so they can be tested without a machine.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import (
    AttributeUpdate,
    BootResult,
    GptPrio,
    ImageFileGpt,
    Partition,
    PartitionNotFoundError,
    Slot,
    SlotTable,
    default_status_path,
    slot_from_boot_hint,
    slot_partition,
)
from wellcar.logline import log_fields
from wellcar.payload.manifest import UsrVerity
from wellcar.payload.slot_install import slot_region
from wellcar.payload.targets import TargetRegion

from .state_dir import StateDir

log = logging.getLogger(__name__)

# The kernel command line key that names the slot outright. Entries we write always carry
# it, so the booted slot is known even when /usr is a dm-verity device (/dev/mapper/usr).
SLOT_HINT_KEY = "wellcar.slot"

# Keys that describe which /usr a boot uses. They are replaced, never copied, when the
# command line of the running boot is reused for the other slot's entry.
_SLOT_SPECIFIC_KEYS = frozenset(
    {
        "BOOT_IMAGE",
        "initrd",
        "mount.usr",
        "verity.usr",
        "verity.usrhash",
        "verity.usroffset",
        "usr",
        "usrhash",
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
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_LOADER_ENTRIES = Path("loader") / "entries"


# ------------------------------------------------------------------------------ errors


class SlotBackendError(Exception):
    """Base class of the errors raised by this module."""


class NodeNotPoweredOnError(SlotBackendError):
    """A FileSlotBackend node was asked about its boot before its first power_on()."""


class BootedSlotUnknownError(SlotBackendError):
    """The kernel command line does not say which /usr slot was booted."""


class SlotDiskNotFoundError(SlotBackendError):
    """No (or more than one) disk holds both USR-A and USR-B."""


class EspNotFoundError(SlotBackendError):
    """No EFI system partition is mounted where one is looked for."""


class BootEntryError(SlotBackendError, ValueError):
    """A boot entry field cannot be written safely (a newline, a bad digest, ...)."""


class CommandFailedError(SlotBackendError):
    """An external command (lsblk, systemctl) could not be run or exited non-zero."""


# ---------------------------------------------------------------------------- protocol


class SlotBackend(Protocol):
    """The node's slots and boot, as the agent uses them."""

    def slot_table(self) -> SlotTable:
        """The slot table, with the running slot fixed to :meth:`booted_slot`."""
        ...

    def booted_slot(self) -> Slot: ...

    def usr_region(self, slot: Slot) -> TargetRegion:
        """Where ``slot``'s /usr bytes live (inside :meth:`payload_image`)."""
        ...

    def kernel_path(self, slot: Slot) -> Path | None:
        """Where a payload's kernel for ``slot`` is written (None: kernels are not kept)."""
        ...

    def initrd_path(self, slot: Slot) -> Path | None: ...

    def payload_image(self) -> Path:
        """The disk image or whole-disk device whose slots are written (install_into_slot)."""
        ...

    def reboot(self) -> None: ...

    def boot_id(self) -> str:
        """Changes on every boot; lets the agent tell "same boot" from "after a reboot"."""
        ...

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        """After ``make_bootable(slot)``: whatever the boot loader needs besides the GPT bits.

        ``verity`` comes from the verified payload's manifest: with it the entry boots the
        slot's /usr through dm-verity, without it /usr is mounted directly.
        """
        ...

    def bless_boot_entry(self, slot: Slot) -> None:
        """After ``mark_good(slot)``: make the slot's boot entry permanent (idempotent)."""
        ...

    def remove_boot_entry(self, slot: Slot) -> None:
        """After ``mark_bad(slot)`` or before rewriting it: the boot loader must not offer it."""
        ...


# ---------------------------------------------------------------- kernel command line


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


def _quote_kernel_word(word: str) -> str:
    key, sep, value = word.partition("=")
    if " " not in word:
        return word
    return f'{key}="{value}"' if sep else f'"{word}"'


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
    for key in ("verity.usr", "mount.usr", "usr"):
        value = arguments.get(key)
        if value:
            # /dev/mapper/usr names no partition: try the next key rather than give up.
            with suppress(PartitionNotFoundError):
                return slot_from_boot_hint(value, partitions)
    hint = arguments.get(SLOT_HINT_KEY, "").strip().upper()
    if hint in (Slot.A.value, Slot.B.value):
        return Slot(hint)
    for key in ("verity.usrhash", "usrhash"):
        usrhash = arguments.get(key, "").strip().lower()
        if usrhash and usrhash_slots and usrhash in usrhash_slots:
            return usrhash_slots[usrhash]
    raise BootedSlotUnknownError(
        f"the kernel command line names no /usr slot (no verity.usr= or mount.usr=PARTUUID=, "
        f"{SLOT_HINT_KEY}=a|b or known verity.usrhash=): {cmdline.strip()!r}"
    )


def _partuuid_in_cmdline(cmdline: str) -> UUID | None:
    arguments = parse_kernel_cmdline(cmdline)
    for key in ("verity.usr", "mount.usr", "usr"):
        value = arguments.get(key, "")
        if value.upper().startswith("PARTUUID="):
            with suppress(ValueError):
                return UUID(value[len("PARTUUID=") :])
    return None


# ------------------------------------------------------------------ finding the disk


def _lsblk_devices(node: object, parent: str | None) -> Iterator[tuple[dict[str, object], str]]:
    """Every device of an lsblk JSON tree (or list), with its parent disk's name."""
    if not isinstance(node, dict):
        return
    name = node.get("name")
    if isinstance(name, str):
        pkname = node.get("pkname")
        yield node, pkname if isinstance(pkname, str) and pkname else (parent or "")
    children = node.get("children")
    if isinstance(children, list):
        for child in children:
            yield from _lsblk_devices(child, name if isinstance(name, str) else parent)


def slot_disk_from_lsblk(lsblk_json: str, booted_partuuid: UUID | None = None) -> str:
    """The name (``vda``) of the whole disk holding both USR-A and USR-B.

    ``lsblk_json`` is ``lsblk -J [-l] -o NAME,PKNAME,PARTLABEL,PARTUUID`` output, as a list
    or as a tree. With several such disks (a second Flatcar-style disk plugged in), the one
    holding ``booted_partuuid`` wins: that is the disk we booted from.
    """
    try:
        document = json.loads(lsblk_json)
    except json.JSONDecodeError as exc:
        raise SlotDiskNotFoundError(f"lsblk output is not JSON ({exc.msg})") from exc
    devices = document.get("blockdevices") if isinstance(document, dict) else None
    if not isinstance(devices, list):
        raise SlotDiskNotFoundError("lsblk output has no 'blockdevices' list")
    labels: dict[str, set[str]] = {}
    partuuids: dict[str, set[UUID]] = {}
    for top in devices:
        for device, disk in _lsblk_devices(top, None):
            label = device.get("partlabel")
            if label not in (Slot.A.label, Slot.B.label) or not disk:
                continue
            labels.setdefault(disk, set()).add(str(label))
            raw = device.get("partuuid")
            if isinstance(raw, str):
                with suppress(ValueError):
                    partuuids.setdefault(disk, set()).add(UUID(raw))
    candidates = sorted(disk for disk, found in labels.items() if len(found) == 2)
    if booted_partuuid is not None:
        booted = [disk for disk in candidates if booted_partuuid in partuuids.get(disk, set())]
        candidates = booted or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise SlotDiskNotFoundError(
            "no disk has both a USR-A and a USR-B partition "
            f"(found: {', '.join(sorted(labels)) or 'none'})"
        )
    raise SlotDiskNotFoundError(
        f"several disks hold USR-A and USR-B ({', '.join(candidates)}) and the kernel command "
        "line does not say which one was booted: name the disk explicitly"
    )


def slot_disk_from_partlabel_links(
    dev: Path = Path("/dev"), sys_class_block: Path = Path("/sys/class/block")
) -> Path:
    """The whole-disk device behind udev's ``/dev/disk/by-partlabel/USR-A`` and ``USR-B``."""
    parents: dict[Slot, str] = {}
    for slot in Slot:
        link = dev / "disk" / "by-partlabel" / slot.label
        if not link.is_symlink():
            raise SlotDiskNotFoundError(f"{link} does not exist")
        partition_name = link.resolve().name
        # /sys/class/block/vda3 links into .../block/vda/vda3: the parent is the disk.
        parents[slot] = (sys_class_block / partition_name).resolve().parent.name
    if parents[Slot.A] != parents[Slot.B]:
        raise SlotDiskNotFoundError(
            f"USR-A is on {parents[Slot.A]} but USR-B is on {parents[Slot.B]}: "
            "the by-partlabel links belong to different disks"
        )
    return dev / parents[Slot.A]


# --------------------------------------------------------------- GPT on a block device


class BlockDeviceGpt(ImageFileGpt):
    """:class:`PartitionAttributeStore` over a whole-disk block device.

    ``wellcar.disk`` sizes a disk by seeking to its end, so the image-file store reads and
    writes ``/dev/sdX`` as it does ``disk.img``: primary copy preferred, backup when the
    primary is damaged, writes backup first then primary with an fsync after each (the
    order GRUB's gptprio uses), under the same advisory lock.
    """


@dataclass(frozen=True)
class BootEntry:
    """One systemd-boot Type #1 entry (``loader/entries/*.conf``)."""

    title: str
    version: str
    linux: str  # path on the ESP, "/EFI/wellcar/vmlinuz-b"
    initrd: str | None
    options: tuple[str, ...]  # kernel command line words
    sort_key: str | None = None


def render_boot_entry(entry: BootEntry) -> str:
    """The entry file's text. Refuses control characters: a version string from an update
    server must not be able to add an ``options`` line of its own."""
    fields = [("title", entry.title), ("version", entry.version)]
    if entry.sort_key:
        fields.append(("sort-key", entry.sort_key))
    fields.append(("linux", entry.linux))
    if entry.initrd:
        fields.append(("initrd", entry.initrd))
    if entry.options:
        fields.append(("options", " ".join(_quote_kernel_word(w) for w in entry.options)))
    for name, value in fields:
        if not value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise BootEntryError(f"boot entry {name} {value!r} is empty or has control characters")
    return "".join(f"{name} {value}\n" for name, value in fields)


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
    kept = tuple(w for w in base_options if w.partition("=")[0] not in _SLOT_SPECIFIC_KEYS)
    if verity is None:
        usr: tuple[str, ...] = (f"mount.usr=PARTUUID={partuuid}",)
    else:
        # UsrVerity checked both values; checked again because they end up in a file the
        # firmware trusts, and a malformed one must not reach it.
        if not _HEX_DIGEST.fullmatch(verity.root_hash):
            raise BootEntryError(f"root hash {verity.root_hash!r} is not 64 lowercase hex digits")
        if verity.hash_offset <= 0:
            raise BootEntryError(f"verity hash offset {verity.hash_offset} is not positive")
        usr = (
            f"verity.usr=PARTUUID={partuuid}",
            f"verity.usrhash={verity.root_hash}",
            f"verity.usroffset={verity.hash_offset}",
        )
    return (*kept, *usr, f"{SLOT_HINT_KEY}={slot.value.lower()}")


class EspBootFiles:
    """Kernels, initrds and systemd-boot entries of both slots on a mounted ESP.

    Files: ``EFI/<brand>/vmlinuz-a``, ``EFI/<brand>/initrd-a``, and one entry per slot in
    ``loader/entries/<brand>-a[+LEFT[-DONE]].conf``.
    """

    def __init__(self, esp: Path, brand: str = "wellcar", title: str = "Wellcar") -> None:
        self.esp = esp
        self.brand = brand
        self.title = title

    def kernel_path(self, slot: Slot) -> Path:
        return self.esp / "EFI" / self.brand / f"vmlinuz-{slot.value.lower()}"

    def initrd_path(self, slot: Slot) -> Path:
        return self.esp / "EFI" / self.brand / f"initrd-{slot.value.lower()}"

    @property
    def entries_dir(self) -> Path:
        return self.esp / _LOADER_ENTRIES

    def entries(self, slot: Slot) -> list[tuple[Path, BootEntryName]]:
        if not self.entries_dir.is_dir():
            return []
        found = []
        for path in sorted(self.entries_dir.iterdir()):
            name = parse_boot_entry_file_name(self.brand, path.name)
            if name is not None and name.slot is slot:
                found.append((path, name))
        return found

    def tries_left(self, slot: Slot) -> int | None:
        """The counter of the slot's entry; None when it has no counted entry."""
        counted = [name.tries_left for _, name in self.entries(slot) if name.tries_left is not None]
        return min(counted) if counted else None

    def _esp_path(self, path: Path) -> str:
        return "/" + path.relative_to(self.esp).as_posix()

    def install(
        self,
        slot: Slot,
        *,
        version: str,
        tries: int,
        partuuid: UUID,
        verity: UsrVerity | None = None,
        base_options: Sequence[str] = (),
    ) -> Path:
        """Write ``slot``'s entry with ``tries`` boots to prove itself; replaces older ones."""
        initrd = self.initrd_path(slot)
        entry = BootEntry(
            title=f"{self.title} {version} ({slot.label})",
            version=version,
            linux=self._esp_path(self.kernel_path(slot)),
            initrd=self._esp_path(initrd) if initrd.exists() else None,
            options=slot_kernel_options(slot, partuuid, verity=verity, base_options=base_options),
            sort_key=self.brand,
        )
        text = render_boot_entry(entry)
        target = self.entries_dir / boot_entry_file_name(self.brand, slot, tries)
        stale = [path for path, _ in self.entries(slot) if path != target]
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        write_file_atomically(target, text, mode=None)  # the ESP is FAT: no chmod
        for path in stale:
            path.unlink(missing_ok=True)
        return target

    def bless(self, slot: Slot) -> Path | None:
        """Drop the counter (what systemd-bless-boot does): the entry is final."""
        final = self.entries_dir / boot_entry_file_name(self.brand, slot)
        for path, name in self.entries(slot):
            if name.tries_left is not None:
                os.replace(path, final)
        return final if final.exists() else None

    def remove(self, slot: Slot) -> None:
        for path, _ in self.entries(slot):
            path.unlink(missing_ok=True)

    def slots_by_usrhash(self) -> dict[str, Slot]:
        """The root hash (``verity.usrhash=``, or ``usrhash=`` of older entries) each of our
        entries boots with."""
        found: dict[str, Slot] = {}
        for slot in Slot:
            for path, _ in self.entries(slot):
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    key, _, value = line.strip().partition(" ")
                    if key != "options":
                        continue
                    arguments = parse_kernel_cmdline(value)
                    for name in ("verity.usrhash", "usrhash"):
                        digest = arguments.get(name, "").strip().lower()
                        if digest:
                            found[digest] = slot
        return found


# ------------------------------------------------------------------- running commands

CommandRunner = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str]) -> str:
    """Run ``argv`` and return its stdout; CommandFailedError when it cannot or fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandFailedError(f"{shlex.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise CommandFailedError(f"{shlex.join(argv)}: {detail[0]}")
    return done.stdout


# ------------------------------------------------------------------ FileSlotBackend


@dataclass(frozen=True)
class SimulatedBoot:
    """What FileSlotBackend.power_on did."""

    slot: Slot
    boot_id: str
    before: GptPrio
    after: GptPrio


@dataclass(frozen=True)
class _NodeState:
    booted_slot: Slot
    boot_id: str
    powered_on_at: datetime
    reboot_requested: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FileSlotBackend:
    """A node on a disk image file: no root, no VM.

    :meth:`power_on` is the firmware and GRUB: gptprio picks the slot and uses one of its
    tries (:meth:`SlotTable.boot_next`), and the booted slot and a fresh random boot id are
    recorded in ``state_dir/node.json``. An agent process created afterwards (a "restart")
    sees the same boot. :meth:`reboot` never ends the process: it records the request and
    calls ``on_reboot``; the harness then restarts the agent and calls :meth:`power_on`.
    Calling :meth:`power_on` without a reboot request is a power cut.
    """

    def __init__(
        self,
        image: Path,
        state_dir: Path,
        *,
        status_path: Path | None = None,
        on_reboot: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.image = image
        self.state_dir = state_dir
        self.status_path = status_path or default_status_path(image)
        self._on_reboot = on_reboot
        self._clock = clock

    # -- the simulated machine

    @property
    def _state_path(self) -> Path:
        return StateDir(self.state_dir).node_state

    def _load(self) -> _NodeState | None:
        try:
            document = json.loads(self._state_path.read_text(encoding="utf-8"))
            return _NodeState(
                Slot(document["booted_slot"]),
                str(document["boot_id"]),
                datetime.fromisoformat(document["powered_on_at"]),
                bool(document["reboot_requested"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise SlotBackendError(f"{self._state_path}: not a node state file ({exc})") from exc

    def _store(self, state: _NodeState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        document = {
            "booted_slot": state.booted_slot.value,
            "boot_id": state.boot_id,
            "powered_on_at": state.powered_on_at.isoformat(),
            "reboot_requested": state.reboot_requested,
        }
        write_file_atomically(self._state_path, json.dumps(document, indent=2) + "\n", mode=None)

    def _running(self) -> _NodeState:
        state = self._load()
        if state is None:
            raise NodeNotPoweredOnError(
                f"the node on {self.image} has not been powered on (call power_on first)"
            )
        return state

    def power_on(self) -> SimulatedBoot:
        """Boot: gptprio.next picks the slot and uses a try; a new boot id is drawn."""
        result: BootResult = SlotTable.for_image(self.image, self.status_path).boot_next()
        boot_id = uuid.uuid4().hex
        self._store(_NodeState(result.slot, boot_id, self._clock(), reboot_requested=False))
        log.info(
            "simulated boot",
            extra=log_fields(slot=result.slot, slots=result.after.describe(), boot_id=boot_id),
        )
        return SimulatedBoot(result.slot, boot_id, result.before, result.after)

    @property
    def powered_on(self) -> bool:
        return self._load() is not None

    @property
    def reboot_requested(self) -> bool:
        state = self._load()
        return state is not None and state.reboot_requested

    # -- SlotBackend

    def slot_table(self) -> SlotTable:
        return SlotTable.for_image(
            self.image, self.status_path, active=self.booted_slot(), clock=self._clock
        )

    def booted_slot(self) -> Slot:
        return self._running().booted_slot

    def boot_id(self) -> str:
        return self._running().boot_id

    def usr_region(self, slot: Slot) -> TargetRegion:
        return slot_region(SlotTable.for_image(self.image, self.status_path), self.image, slot)

    def kernel_path(self, slot: Slot) -> Path:
        return self.state_dir / f"vmlinuz-{slot.value.lower()}"

    def initrd_path(self, slot: Slot) -> Path:
        return self.state_dir / f"initrd-{slot.value.lower()}"

    def payload_image(self) -> Path:
        return self.image

    def reboot(self) -> None:
        state = self._running()
        self._store(_NodeState(state.booted_slot, state.boot_id, state.powered_on_at, True))
        log.info("reboot requested on the simulated node", extra=log_fields(slot=state.booted_slot))
        if self._on_reboot is not None:
            self._on_reboot()

    # GRUB's gptprio is this node's boot loader: the GPT bits are all it reads, so there
    # are no entries to keep.
    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        return None

    def bless_boot_entry(self, slot: Slot) -> None:
        return None

    def remove_boot_entry(self, slot: Slot) -> None:
        return None


# ------------------------------------------------------------- BlockDeviceSlotBackend


@dataclass(frozen=True)
class HostPaths:
    """Where the backend looks on the host (tests point these into a temporary tree)."""

    proc: Path = Path("/proc")
    dev: Path = Path("/dev")
    sys_class_block: Path = Path("/sys/class/block")
    esp_candidates: tuple[Path, ...] = (Path("/boot"), Path("/efi"), Path("/boot/efi"))


class BlockDeviceSlotBackend:
    """The real machine: the boot disk's GPT, /proc/cmdline, the ESP and systemctl.

    Both boot loaders are served. GRUB's gptprio reads the GPT bits directly. With
    systemd-boot, every slot made bootable also gets an entry with a boot counter
    (``wellcar-b+1.conf``); systemd-boot counts it down on each boot, and :meth:`slot_table`
    copies a lower count back into the GPT's tries, so the rules of :class:`SlotTable`
    (a slot out of tries that is not running has failed) hold for both.
    """

    def __init__(
        self,
        *,
        state_dir: Path = Path("/var/lib/wellcar"),
        disk: Path | None = None,
        esp: Path | None = None,
        brand: str = "wellcar",
        title: str = "Wellcar",
        base_options: Sequence[str] | None = None,
        paths: HostPaths = HostPaths(),
        run: CommandRunner = run_command,
    ) -> None:
        self.state_dir = state_dir
        self.status_path = StateDir(state_dir).slot_status
        self._disk = disk
        self._esp = esp
        self._brand = brand
        self._title = title
        self._base_options = tuple(base_options) if base_options is not None else None
        self._paths = paths
        self._run = run

    # -- host facts

    def cmdline(self) -> str:
        return (self._paths.proc / "cmdline").read_text(encoding="utf-8", errors="replace")

    def disk(self) -> Path:
        """The whole-disk device holding USR-A and USR-B (found once, then remembered)."""
        if self._disk is None:
            self._disk = self._locate_disk()
        return self._disk

    def _locate_disk(self) -> Path:
        booted = _partuuid_in_cmdline(self.cmdline())
        try:
            output = self._run(["lsblk", "-J", "-l", "-o", "NAME,PKNAME,PARTLABEL,PARTUUID"])
            return self._paths.dev / slot_disk_from_lsblk(output, booted)
        except (CommandFailedError, SlotDiskNotFoundError) as exc:
            log.info(
                "lsblk did not find the slot disk; trying by-partlabel links",
                extra=log_fields(error=exc),
            )
        return slot_disk_from_partlabel_links(self._paths.dev, self._paths.sys_class_block)

    def esp_files(self) -> EspBootFiles | None:
        """The ESP's boot files, or None when no ESP is mounted (a GRUB-only machine)."""
        esp = self._esp
        if esp is None:
            esp = next((c for c in self._paths.esp_candidates if (c / "EFI").is_dir()), None)
        return EspBootFiles(esp, self._brand, self._title) if esp is not None else None

    def _require_esp(self) -> EspBootFiles:
        files = self.esp_files()
        if files is None:
            looked = ", ".join(str(c) for c in self._paths.esp_candidates)
            raise EspNotFoundError(f"no EFI system partition with an EFI directory at {looked}")
        return files

    def _store(self) -> BlockDeviceGpt:
        return BlockDeviceGpt(self.disk())

    # -- SlotBackend

    def booted_slot(self) -> Slot:
        files = self.esp_files()
        return booted_slot_from_cmdline(
            self.cmdline(),
            self._store().read_gpt().partitions,
            files.slots_by_usrhash() if files is not None else None,
        )

    def slot_table(self) -> SlotTable:
        store = self._store()
        self._copy_boot_counters_to_gpt(store)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return SlotTable(store, self.status_path, active=self.booted_slot())

    def _copy_boot_counters_to_gpt(self, store: BlockDeviceGpt) -> None:
        files = self.esp_files()
        if files is None:
            return
        disk = store.read_gpt()
        for slot in Slot:
            left = files.tries_left(slot)
            partition = slot_partition(disk, slot)
            prio = GptPrio.from_attributes(partition.attributes)
            if left is None or prio.priority == 0 or prio.successful or prio.tries <= left:
                continue
            log.info(
                "systemd-boot used a try of the slot",
                extra=log_fields(slot=slot, tries_before=prio.tries, tries_after=left),
            )
            lowered = GptPrio(prio.priority, left, False).apply_to(partition.attributes)
            store.write_attributes([AttributeUpdate(partition.number, lowered)])

    def usr_region(self, slot: Slot) -> TargetRegion:
        partition = slot_partition(self._store().read_gpt(), slot)
        return TargetRegion(self.disk(), partition.byte_offset, partition.byte_size)

    def kernel_path(self, slot: Slot) -> Path:
        return self._require_esp().kernel_path(slot)

    def initrd_path(self, slot: Slot) -> Path:
        return self._require_esp().initrd_path(slot)

    def payload_image(self) -> Path:
        return self.disk()

    def reboot(self) -> None:
        self._run(["systemctl", "reboot"])

    def boot_id(self) -> str:
        path = self._paths.proc / "sys" / "kernel" / "random" / "boot_id"
        return path.read_text(encoding="ascii").strip()

    def _entry_base_options(self) -> tuple[str, ...]:
        if self._base_options is not None:
            return self._base_options
        # The running boot's command line minus its /usr: console, root= and whatever the
        # vendor or user added carry over to the other slot's entry.
        # Words, not a dict: repeated keys such as console= all matter.
        return tuple(kernel_cmdline_words(self.cmdline()))

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        files = self.esp_files()
        if files is None:
            return  # GRUB-only machine: the GPT bits already say everything
        partuuid = slot_partition(self._store().read_gpt(), slot).unique_guid
        path = files.install(
            slot,
            version=version,
            tries=tries,
            partuuid=partuuid,
            verity=verity,
            base_options=self._entry_base_options(),
        )
        log.info("wrote boot entry", extra=log_fields(path=path))

    def bless_boot_entry(self, slot: Slot) -> None:
        files = self.esp_files()
        if files is not None:
            files.bless(slot)

    def remove_boot_entry(self, slot: Slot) -> None:
        files = self.esp_files()
        if files is not None:
            files.remove(slot)
