"""gptprio bits, GRUB's gptprio.next and cgpt prioritize, table-driven, plus the lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wellcar.disk import (
    GptPrio,
    InvalidAttributeError,
    NoBootablePartitionError,
    PartitionNotFoundError,
    gptprio_next,
    prioritize,
)
from wellcar.disk.gptprio import GPTPRIO_MASK
from wellcar.disk.partition_types import EFI_SYSTEM, FLATCAR_USR

ATTRIBUTES = st.integers(min_value=0, max_value=(1 << 64) - 1)
FIELD = st.integers(min_value=0, max_value=15)


@dataclass(frozen=True)
class Part:
    """A minimal partition for the pure functions."""

    number: int
    attributes: int
    type_guid: UUID = FLATCAR_USR.guid


def usr(number: int, priority: int, tries: int, successful: int, other_bits: int = 0) -> Part:
    return Part(number, GptPrio(priority, tries, bool(successful)).apply_to(other_bits))


def prio_of(attributes: int) -> tuple[int, int, int]:
    p = GptPrio.from_attributes(attributes)
    return p.priority, p.tries, int(p.successful)


# ------------------------------------------------------------------------------ bits


@pytest.mark.parametrize(
    ("prio", "attributes"),
    [
        (GptPrio(1, 0, True), 0x0101_0000_0000_0000),  # Flatcar's fresh USR-A
        (GptPrio(2, 1, False), 0x0012_0000_0000_0000),  # USR-B after postinst
        (GptPrio(15, 15, True), 0x01FF_0000_0000_0000),
        (GptPrio(0, 0, False), 0),
        (GptPrio(0, 0, True), 1 << 56),
        (GptPrio(0, 7, False), 7 << 52),
        (GptPrio(9, 0, False), 9 << 48),
    ],
)
def test_bit_positions(prio: GptPrio, attributes: int) -> None:
    assert prio.apply_to(0) == attributes
    assert GptPrio.from_attributes(attributes) == prio


def test_neighbouring_bits_are_not_gptprio() -> None:
    # bits 47 and 57-63 are someone else's: they must not leak into the fields
    noise = (1 << 47) | (0x7F << 57) | 0b111
    assert GptPrio.from_attributes(noise) == GptPrio(0, 0, False)
    assert GptPrio(3, 2, True).apply_to(noise) & ~GPTPRIO_MASK == noise


@given(FIELD, FIELD, st.booleans(), ATTRIBUTES)
def test_round_trip_keeps_other_bits(
    priority: int, tries: int, successful: bool, attributes: int
) -> None:
    prio = GptPrio(priority, tries, successful)
    written = prio.apply_to(attributes)
    assert GptPrio.from_attributes(written) == prio
    assert written & ~GPTPRIO_MASK == attributes & ~GPTPRIO_MASK
    assert 0 <= written < 1 << 64


@given(ATTRIBUTES)
def test_reading_then_applying_is_identity(attributes: int) -> None:
    assert GptPrio.from_attributes(attributes).apply_to(attributes) == attributes


@pytest.mark.parametrize("fields", [(16, 0, False), (-1, 0, False), (0, 16, False), (0, -1, False)])
def test_fields_are_range_checked(fields: tuple[int, int, bool]) -> None:
    with pytest.raises(InvalidAttributeError, match=r"outside 0\.\.15"):
        GptPrio(*fields)


@pytest.mark.parametrize("attributes", [-1, 1 << 64])
def test_attributes_must_fit_64_bits(attributes: int) -> None:
    with pytest.raises(InvalidAttributeError, match="64-bit"):
        GptPrio.from_attributes(attributes)
    with pytest.raises(InvalidAttributeError, match="64-bit"):
        GptPrio(1, 0, True).apply_to(attributes)


# ------------------------------------------------------------------------ gptprio.next

# (partitions as (number, P, T, S), expected number, expected (P, T, S) after the boot)
NEXT_CASES = {
    "fresh image boots A": ([(3, 1, 0, 1), (4, 0, 0, 0)], 3, (1, 0, 1)),
    "B on trial beats good A": ([(3, 1, 0, 1), (4, 2, 1, 0)], 4, (2, 0, 0)),
    "B out of tries: A": ([(3, 1, 0, 1), (4, 2, 0, 0)], 3, (1, 0, 1)),
    "B good at P2": ([(3, 1, 0, 1), (4, 2, 0, 1)], 4, (2, 0, 1)),
    "tie goes to the lower number": ([(3, 2, 0, 1), (4, 2, 0, 1)], 3, (2, 0, 1)),
    "tie, listed high first": ([(4, 2, 0, 1), (3, 2, 0, 1)], 3, (2, 0, 1)),
    "tie between trials": ([(3, 2, 2, 0), (4, 2, 1, 0)], 3, (2, 1, 0)),
    "priority 0 never boots": ([(3, 0, 5, 1), (4, 1, 1, 0)], 4, (1, 0, 0)),
    "several tries, one used": ([(3, 1, 0, 1), (4, 5, 3, 0)], 4, (5, 2, 0)),
    "successful with tries: a try is still used": ([(3, 1, 3, 1)], 3, (1, 2, 1)),
    "higher priority wins over lower number": ([(3, 1, 0, 1), (4, 15, 1, 0)], 4, (15, 0, 0)),
}


@pytest.mark.parametrize(("parts", "number", "after"), NEXT_CASES.values(), ids=NEXT_CASES)
def test_gptprio_next(
    parts: list[tuple[int, int, int, int]], number: int, after: tuple[int, int, int]
) -> None:
    choice = gptprio_next([usr(*p) for p in parts])
    assert choice.number == number
    assert prio_of(choice.attributes_after) == after
    before = next(p for p in parts if p[0] == number)[1:]
    assert prio_of(choice.attributes_before) == before
    assert (choice.update is None) == (before == after)


def test_next_ignores_other_partition_types() -> None:
    esp = Part(1, GptPrio(15, 15, True).apply_to(0), EFI_SYSTEM.guid)
    assert gptprio_next([esp, usr(3, 1, 0, 1)]).number == 3


def test_next_decrement_keeps_other_bits() -> None:
    other = (1 << 2) | (1 << 60)
    choice = gptprio_next([usr(4, 2, 1, 0, other_bits=other)])
    assert choice.attributes_after == GptPrio(2, 0, False).apply_to(other)
    assert choice.update is not None and choice.update.number == 4


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [(3, 0, 0, 0), (4, 0, 0, 0)],
        [(3, 0, 3, 1), (4, 0, 1, 0)],  # eligible flags but priority 0
        [(3, 1, 0, 0), (4, 2, 0, 0)],  # priorities but no tries and not successful
    ],
)
def test_next_with_nothing_bootable(parts: list[tuple[int, int, int, int]]) -> None:
    with pytest.raises(NoBootablePartitionError, match="no /usr partition is bootable"):
        gptprio_next([usr(*p) for p in parts])


# ----------------------------------------------------------------------- prioritize

# (partitions as (number, P, T, S), target, max priority, expected {number: P} afterwards)
PRIORITIZE_CASES = {
    "postinst: B above A": ([(3, 1, 0, 1), (4, 0, 1, 0)], 4, None, {3: 1, 4: 2}),
    "rollback: A above B": ([(3, 1, 0, 1), (4, 2, 0, 1)], 3, None, {3: 2, 4: 1}),
    "already on top": ([(3, 1, 0, 1), (4, 2, 0, 1)], 4, None, {3: 1, 4: 2}),
    "gaps are closed": ([(3, 5, 0, 1), (4, 9, 0, 1)], 3, None, {3: 2, 4: 1}),
    "zero stays zero": ([(3, 0, 0, 0), (4, 0, 0, 1)], 4, None, {3: 0, 4: 1}),
    "equal priorities stay equal": (
        [(3, 4, 0, 1), (4, 4, 0, 1), (10, 1, 0, 1)], 10, None, {3: 1, 4: 1, 10: 2}
    ),
    "order of the others kept": (
        [(3, 3, 0, 1), (4, 2, 0, 1), (10, 2, 1, 0)], 10, None, {3: 2, 4: 1, 10: 3}
    ),
    "explicit top": ([(3, 1, 0, 1), (4, 0, 1, 0)], 4, 15, {3: 14, 4: 15}),
    "coalesced at 1": ([(3, 3, 0, 1), (4, 2, 0, 1), (10, 1, 0, 1)], 10, 2, {3: 1, 4: 1, 10: 2}),
}  # fmt: skip


@pytest.mark.parametrize(
    ("parts", "target", "top", "expected"), PRIORITIZE_CASES.values(), ids=PRIORITIZE_CASES
)
def test_prioritize(
    parts: list[tuple[int, int, int, int]], target: int, top: int | None, expected: dict[int, int]
) -> None:
    partitions = [usr(*p) for p in parts]
    updates = prioritize(partitions, target, top)
    result = {p.number: p.attributes for p in partitions}
    for update in updates:
        assert result[update.number] != update.attributes, "no-op updates are left out"
        result[update.number] = update.attributes
    assert {n: prio_of(a)[0] for n, a in result.items()} == expected
    for number, _, tries, successful in parts:  # only priorities move
        assert prio_of(result[number])[1:] == (tries, successful)


def test_prioritize_refuses_non_usr_and_missing_partitions() -> None:
    esp = Part(1, 0, EFI_SYSTEM.guid)
    with pytest.raises(PartitionNotFoundError, match=r"partition 1 is not a /usr partition.*efi"):
        prioritize([esp, usr(3, 1, 0, 1)], 1)
    with pytest.raises(PartitionNotFoundError, match="does not exist"):
        prioritize([usr(3, 1, 0, 1)], 4)
    with pytest.raises(InvalidAttributeError):
        prioritize([usr(3, 1, 0, 1)], 3, max_priority=16)


# ------------------------------------------------------------------------ lifecycle


class Disk:
    """Just the attribute fields of USR-A (3) and USR-B (4), driven like a node would."""

    def __init__(self) -> None:
        self.attributes = {3: GptPrio(1, 0, True).apply_to(0), 4: 0}

    def parts(self) -> list[Part]:
        return [Part(n, a) for n, a in self.attributes.items()]

    def state(self) -> dict[int, tuple[int, int, int]]:
        return {n: prio_of(a) for n, a in self.attributes.items()}

    def postinst(self, number: int) -> None:
        """flatcar-postinst: tries 1, not successful, then cgpt prioritize."""
        self.attributes[number] = GptPrio(
            GptPrio.from_attributes(self.attributes[number]).priority, 1, False
        ).apply_to(self.attributes[number])
        self.prioritize(number)

    def prioritize(self, number: int) -> None:
        for update in prioritize(self.parts(), number):
            self.attributes[update.number] = update.attributes

    def boot(self) -> int:
        choice = gptprio_next(self.parts())
        self.attributes[choice.number] = choice.attributes_after
        return choice.number

    def set_good(self, number: int) -> None:
        prio = GptPrio.from_attributes(self.attributes[number])
        self.attributes[number] = GptPrio(prio.priority, 0, True).apply_to(0)


def test_reference_lifecycle_update_to_b() -> None:
    disk = Disk()
    assert disk.state() == {3: (1, 0, 1), 4: (0, 0, 0)}
    disk.postinst(4)
    assert disk.state() == {3: (1, 0, 1), 4: (2, 1, 0)}
    assert disk.boot() == 4
    assert disk.state() == {3: (1, 0, 1), 4: (2, 0, 0)}
    disk.set_good(4)
    assert disk.state() == {3: (1, 0, 1), 4: (2, 0, 1)}
    assert disk.boot() == 4  # and stays there, nothing written
    assert disk.state() == {3: (1, 0, 1), 4: (2, 0, 1)}
    # the next update goes back into A
    disk.postinst(3)
    assert disk.state() == {3: (2, 1, 0), 4: (1, 0, 1)}
    assert disk.boot() == 3


def test_reference_lifecycle_automatic_rollback() -> None:
    disk = Disk()
    disk.postinst(4)
    assert disk.boot() == 4  # B dies before it is marked good
    assert disk.boot() == 3  # B is T0 S0: GRUB passes it over
    assert disk.state() == {3: (1, 0, 1), 4: (2, 0, 0)}
    assert disk.boot() == 3  # for good


def test_reference_lifecycle_manual_rollback() -> None:
    disk = Disk()
    disk.postinst(4)
    disk.boot()
    disk.set_good(4)
    disk.prioritize(3)  # cgpt prioritize "$(cgpt find -t flatcar-usr | grep -v <running>)"
    assert disk.state() == {3: (2, 0, 1), 4: (1, 0, 1)}
    assert disk.boot() == 3
