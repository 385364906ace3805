"""Numeric codes of the fleet model, as Nebraska stores and serves them."""

from __future__ import annotations

from enum import IntEnum


class InstanceStatus(IntEnum):
    UNDEFINED = 1
    UPDATE_GRANTED = 2
    ERROR = 3
    COMPLETE = 4
    INSTALLED = 5
    DOWNLOADED = 6
    DOWNLOADING = 7
    ON_HOLD = 8


# A check-in in one of these states is refused with error-updateInProgressOnInstance.
IN_PROGRESS_STATUSES = frozenset(
    {InstanceStatus.DOWNLOADING, InstanceStatus.DOWNLOADED, InstanceStatus.INSTALLED}
)
# Reaching one of these states ends the instance's update attempt.
ENDS_UPDATE_STATUSES = frozenset(
    {
        InstanceStatus.COMPLETE,
        InstanceStatus.ERROR,
        InstanceStatus.UNDEFINED,
        InstanceStatus.ON_HOLD,
    }
)


class ActivityClass(IntEnum):
    PACKAGE_NOT_FOUND = 1
    ROLLOUT_STARTED = 2
    ROLLOUT_FINISHED = 3
    ROLLOUT_FAILED = 4
    INSTANCE_UPDATE_FAILED = 5
    CHANNEL_PACKAGE_UPDATED = 6


class Severity(IntEnum):
    SUCCESS = 1
    INFO = 2
    WARNING = 3
    ERROR = 4


class PackageType(IntEnum):
    FLATCAR = 1
    DOCKER = 2
    ROCKET = 3
    OTHER = 4


class Arch(IntEnum):
    ALL = 0
    AMD64 = 1
    AARCH64 = 2
    X86 = 3


def arch_from_board(board: str | None, os_arch: str | None) -> Arch:
    """The client's architecture from the Omaha `board` or `os@arch`, amd64 if unknown."""
    if board:
        name = board.removesuffix("-usr")
        if name == "amd64":
            return Arch.AMD64
        if name == "arm64":
            return Arch.AARCH64
    if os_arch:
        name = os_arch.lower()
        if name in ("x64", "amd64", "x86_64"):
            return Arch.AMD64
        if name in ("arm64", "aarch64"):
            return Arch.AARCH64
        if name in ("x86", "i386", "i686"):
            return Arch.X86
    return Arch.AMD64


# Old CoreOS/Flatcar images send these hard-coded group UUIDs as their track.
LEGACY_GROUP_TRACKS: dict[str, str] = {
    "5b810680-e36a-4879-b98a-4f989e80b899": "alpha",
    "3fe10490-dd73-4b49-b72a-28ac19acfcdc": "beta",
    "9a2deb70-37be-4026-853f-bfdd6b347bbe": "stable",
    "72834a2b-ad86-4d6d-b498-e08a19ebe54e": "edge",
    "e641708d-fb48-4260-8bdf-ba2074a1147a": "alpha",
    "d112ec01-ba34-4a9e-9d4b-9814a685f266": "beta",
    "11a585f6-9418-4df0-8863-78b2fd3240f8": "stable",
    "b4b2fa22-c1ea-498c-a8ac-c1dc0b1d7c17": "edge",
}
