"""Flatcar's gptprio attribute bits, GRUB's ``gptprio.next`` and cgpt's ``prioritize``.

In the 64-bit attribute field of a flatcar-usr partition entry:

- bits 48-51, priority (0-15): the highest bootable one boots; 0 never boots;
- bits 52-55, tries (0-15): boots left before the partition counts as failed;
- bit 56, successful: the partition has booted and was found good.

Both functions here are pure: they take the partitions and return what to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from .errors import InvalidAttributeError, NoBootablePartitionError, PartitionNotFoundError
from .gpt import AttributeUpdate, check_attributes
from .partition_types import FLATCAR_USR, type_name

PRIORITY_SHIFT = 48
TRIES_SHIFT = 52
SUCCESSFUL_BIT = 56
FIELD_MAX = 15  # priority and tries are 4-bit fields
_FIELD_MASK = 0xF
GPTPRIO_MASK = (
    (_FIELD_MASK << PRIORITY_SHIFT) | (_FIELD_MASK << TRIES_SHIFT) | (1 << SUCCESSFUL_BIT)
)


@dataclass(frozen=True)
class GptPrio:
    """The gptprio fields of one partition."""

    priority: int = 0
    tries: int = 0
    successful: bool = False

    def __post_init__(self) -> None:
        for name, value in (("priority", self.priority), ("tries", self.tries)):
            if not 0 <= value <= FIELD_MAX:
                raise InvalidAttributeError(f"gptprio {name} {value} is outside 0..{FIELD_MAX}")

    @classmethod
    def from_attributes(cls, attributes: int) -> GptPrio:
        check_attributes(attributes)
        return cls(
            priority=attributes >> PRIORITY_SHIFT & _FIELD_MASK,
            tries=attributes >> TRIES_SHIFT & _FIELD_MASK,
            successful=bool(attributes >> SUCCESSFUL_BIT & 1),
        )

    def apply_to(self, attributes: int) -> int:
        """``attributes`` with the gptprio bits replaced by these; all other bits kept."""
        check_attributes(attributes)
        return (
            attributes & ~GPTPRIO_MASK
            | self.priority << PRIORITY_SHIFT
            | self.tries << TRIES_SHIFT
            | int(self.successful) << SUCCESSFUL_BIT
        )

    @property
    def bootable(self) -> bool:
        """Whether gptprio.next may pick this partition at all."""
        return self.priority > 0 and (self.tries > 0 or self.successful)

    def describe(self) -> str:
        return f"P{self.priority} T{self.tries} S{int(self.successful)}"


class AttributedPartition(Protocol):
    """What the selection rules need of a partition (a gpt.Partition has all of it)."""

    @property
    def number(self) -> int: ...

    @property
    def type_guid(self) -> UUID: ...

    @property
    def attributes(self) -> int: ...


@dataclass(frozen=True)
class BootChoice:
    """The partition gptprio.next boots, and its attributes before and after the boot."""

    number: int
    attributes_before: int
    attributes_after: int

    @property
    def before(self) -> GptPrio:
        return GptPrio.from_attributes(self.attributes_before)

    @property
    def after(self) -> GptPrio:
        return GptPrio.from_attributes(self.attributes_after)

    @property
    def update(self) -> AttributeUpdate | None:
        """What to write back: None when the boot changed nothing (a successful partition)."""
        if self.attributes_after == self.attributes_before:
            return None
        return AttributeUpdate(self.number, self.attributes_after)


def _usr_partitions(
    partitions: Iterable[AttributedPartition], usr_type: UUID
) -> list[AttributedPartition]:
    # Walk in partition-number order: GRUB scans the entry array from entry 1 up, which is
    # what makes a tie go to the lower number.
    return sorted((p for p in partitions if p.type_guid == usr_type), key=lambda p: p.number)


def gptprio_next(
    partitions: Iterable[AttributedPartition], usr_type: UUID = FLATCAR_USR.guid
) -> BootChoice:
    """Choose the /usr partition to boot, as GRUB's ``gptprio.next`` does.

    Among partitions of ``usr_type``, the highest priority with tries left or the successful
    flag wins; equal priorities go to the lower number; priority 0 never boots. When the
    winner has tries left, one is used up: write :attr:`BootChoice.update` back (backup GPT
    first) before booting it.
    """
    chosen: AttributedPartition | None = None
    for partition in _usr_partitions(partitions, usr_type):
        prio = GptPrio.from_attributes(partition.attributes)
        best = GptPrio.from_attributes(chosen.attributes).priority if chosen else 0
        if (prio.tries > 0 or prio.successful) and prio.priority > best:
            chosen = partition
    if chosen is None:
        raise NoBootablePartitionError(
            "no /usr partition is bootable: every one has priority 0 or neither tries left "
            "nor the successful flag (GRUB would stop with 'Reading or updating the GPT "
            "failed!')"
        )
    prio = GptPrio.from_attributes(chosen.attributes)
    after = prio.apply_to(chosen.attributes)
    if prio.tries > 0:
        used = GptPrio(prio.priority, prio.tries - 1, prio.successful)
        after = used.apply_to(chosen.attributes)
    return BootChoice(chosen.number, chosen.attributes, after)


def prioritize(
    partitions: Sequence[AttributedPartition],
    number: int,
    max_priority: int | None = None,
    usr_type: UUID = FLATCAR_USR.guid,
) -> tuple[AttributeUpdate, ...]:
    """Put partition ``number`` first in the boot order, as ``cgpt prioritize`` does.

    The /usr partitions are grouped by priority; the target leaves its group and goes on
    top; groups are then renumbered from the top down, keeping their order: the top gets
    ``max_priority`` (default: the number of groups, at most 15), each next group one less,
    never below 1. Priority-0 partitions stay 0 (a disabled slot is not revived). Only the
    priority changes; returns the updates for the partitions whose attributes change.
    """
    if max_priority is not None and not 1 <= max_priority <= FIELD_MAX:
        raise InvalidAttributeError(f"max priority {max_priority} is outside 1..{FIELD_MAX}")
    usr = _usr_partitions(partitions, usr_type)
    target = next((p for p in usr if p.number == number), None)
    if target is None:
        other = next((p for p in partitions if p.number == number), None)
        why = f"it is of type {type_name(other.type_guid)}" if other else "it does not exist"
        raise PartitionNotFoundError(f"partition {number} is not a /usr partition: {why}")

    others = [p for p in usr if p is not target]
    levels = sorted(
        {GptPrio.from_attributes(p.attributes).priority for p in others} - {0}, reverse=True
    )
    groups: list[list[AttributedPartition]] = [[target]] + [
        [p for p in others if GptPrio.from_attributes(p.attributes).priority == level]
        for level in levels
    ]
    priority = max_priority if max_priority is not None else min(len(groups), FIELD_MAX)
    updates: list[AttributeUpdate] = []
    for group in groups:
        for partition in group:
            old = GptPrio.from_attributes(partition.attributes)
            new = GptPrio(priority, old.tries, old.successful).apply_to(partition.attributes)
            if new != partition.attributes:
                updates.append(AttributeUpdate(partition.number, new))
        priority = max(priority - 1, 1)
    return tuple(sorted(updates, key=lambda u: u.number))
