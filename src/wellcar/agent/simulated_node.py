"""A node on a disk image file, for tests and the end-to-end test: no root, no VM."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from wellcar.atomic_file import write_file_atomically
from wellcar.disk import BootResult, GptPrio, Slot, SlotTable, UsrVerity, default_status_path
from wellcar.logline import log_fields
from wellcar.payload.slot_install import slot_region
from wellcar.payload.targets import TargetRegion

from .slot_backend import NodeNotPoweredOnError, SlotBackendError
from .state_dir import StateDir

log = logging.getLogger(__name__)


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

    def reconcile(self) -> None:
        return None  # power_on() already recorded the boot in the GPT, as GRUB does

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
