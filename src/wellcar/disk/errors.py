"""Exceptions raised by :mod:`wellcar.disk`.

Everything the package raises on purpose is a :class:`DiskError`. The messages are written
for the person at the terminal: they name the file, the partition or the value involved and,
where there is one, what to do about it. The CLI prints them as they are.
"""

from __future__ import annotations


class DiskError(Exception):
    """Base class of every error raised by :mod:`wellcar.disk`."""


class ImageAccessError(DiskError):
    """The image file cannot be opened, read or written (missing, a directory, no permission)."""


class NotGptError(DiskError):
    """The image carries no GPT at all (no signature in either header location)."""


class GptCorruptError(DiskError):
    """A GPT is present but cannot be trusted: both copies fail validation."""


class GptHeaderError(GptCorruptError):
    """One copy of the GPT (header or its entry array) fails validation.

    Raised internally per copy; the reader only lets it escape, wrapped in a
    :class:`GptCorruptError` naming both problems, when the other copy is bad too.
    """


class PartitionNotFoundError(DiskError):
    """No partition with the requested number (or of the requested type) exists."""


class LayoutError(DiskError, ValueError):
    """A disk layout is not usable (sizes not aligned, too small, ...)."""


class ImageTooSmallError(LayoutError):
    """The requested image size cannot hold the layout's partitions plus both GPT copies."""


class InvalidSizeError(DiskError, ValueError):
    """A size written by a user (e.g. ``"12Q"``) cannot be understood."""


class InvalidAttributeError(DiskError, ValueError):
    """A gptprio field or a GPT attribute value is outside its range."""


class NoBootablePartitionError(DiskError):
    """gptprio finds no /usr partition it may boot (GRUB stops the boot in that case)."""


class SlotStateError(DiskError):
    """A slot operation is refused because the slot is not in a state that allows it."""


class SlotStatusError(DiskError):
    """The slot-status file is unreadable, malformed or belongs to another disk."""


class UsrVerityError(DiskError, ValueError):
    """A /usr dm-verity root hash or hash offset is malformed."""


class BootEntryError(DiskError, ValueError):
    """A boot entry or kernel command line cannot be written safely or read back
    (a newline, a bad digest, a malformed entry file)."""


class BootedSlotUnknownError(DiskError):
    """The kernel command line does not say which /usr slot was booted."""
