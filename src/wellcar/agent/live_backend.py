"""A live system's "slots": there are none.

The live ISO and PXE boots run /usr from RAM with a tmpfs root (docs/live.md): no disk holds
USR-A and USR-B, so nothing can be installed or rolled back. The agent still runs there and
reports the node to the update server (ping-only requests: the server registers the
instance and its version, and grants nothing), so a fleet sees its live machines. A live
system is updated by booting newer media, or installed to a disk with ``wellcar install``.

:class:`LiveSystemBackend` answers what a live boot can answer (its boot id, a reboot) and
refuses every slot operation with :class:`NoSlotsError`, whose message says what to do.
"""

from __future__ import annotations

from pathlib import Path

from wellcar.disk import Slot, SlotTable, UsrVerity
from wellcar.live.boot_scripts import LIVE_MARKER
from wellcar.payload.targets import TargetRegion

from .node_identity import BOOT_ID_PATH, in_root
from .slot_backend import SlotBackendError
from .slot_disk import CommandRunner, run_command

NO_SLOTS = (
    "this is a live system (/usr in RAM): it has no A/B slots to update; boot newer live "
    "media, or install to a disk with `wellcar install`"
)


class NoSlotsError(SlotBackendError):
    """A slot operation on a live system."""

    def __init__(self) -> None:
        super().__init__(NO_SLOTS)


def is_live_system(root: Path = Path("/")) -> bool:
    """The live boot script leaves its marker in /run (wellcar.live.boot_scripts)."""
    return in_root(root, LIVE_MARKER).exists()


class LiveSystemBackend:
    """The SlotBackend of a live boot (see the module's docstring)."""

    def __init__(self, root: Path = Path("/"), run: CommandRunner = run_command) -> None:
        self._root = root
        self._run = run

    def reconcile(self) -> None:
        return None  # no boot counters: nothing was booted from a slot

    def slot_table(self) -> SlotTable:
        raise NoSlotsError()

    def booted_slot(self) -> Slot:
        raise NoSlotsError()

    def usr_region(self, slot: Slot) -> TargetRegion:
        raise NoSlotsError()

    def kernel_path(self, slot: Slot) -> Path | None:
        raise NoSlotsError()

    def initrd_path(self, slot: Slot) -> Path | None:
        raise NoSlotsError()

    def payload_image(self) -> Path:
        raise NoSlotsError()

    def reboot(self) -> None:
        self._run(["systemctl", "reboot"])

    def boot_id(self) -> str:
        return in_root(self._root, BOOT_ID_PATH).read_text(encoding="ascii").strip()

    def write_boot_entry(
        self, slot: Slot, *, version: str, tries: int, verity: UsrVerity | None = None
    ) -> None:
        raise NoSlotsError()

    def bless_boot_entry(self, slot: Slot) -> None:
        raise NoSlotsError()

    def remove_boot_entry(self, slot: Slot) -> None:
        raise NoSlotsError()
