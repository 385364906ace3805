"""The dm-verity parameters of a /usr slot: what a payload's manifest carries and what the
slot's boot entry passes to the initrd.

It lives in ``wellcar.disk`` because both sides use it: the payload format (which signs
the values) and the boot contract (which renders them on a kernel command line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsrVerityError

# veritysetup's data block size in the images: the hash tree starts on a block boundary.
VERITY_BLOCK_SIZE = 4096
_UINT64_MAX = (1 << 64) - 1
_HEX_ROOT_HASH = re.compile(r"[0-9a-f]{64}")


def is_root_hash(value: object) -> bool:
    """64 lowercase hex digits: the sha256 root hash ``veritysetup format`` prints."""
    return isinstance(value, str) and _HEX_ROOT_HASH.fullmatch(value) is not None


def is_hash_offset(value: object) -> bool:
    """A positive multiple of the verity block size that fits the manifest's uint64."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 < value <= _UINT64_MAX
        and value % VERITY_BLOCK_SIZE == 0
    )


@dataclass(frozen=True, slots=True)
class UsrVerity:
    """How the node boots a /usr through dm-verity.

    The /usr content is the erofs image followed by its hash tree (``veritysetup format``
    with a superblock) starting at byte ``hash_offset``; the boot entry passes both values
    on the kernel command line. In a payload they are part of the signed manifest.
    """

    root_hash: str  # 64 lowercase hex digits: the sha256 root hash
    hash_offset: int  # bytes from the start of the partition to the hash tree superblock

    def __post_init__(self) -> None:
        if not is_root_hash(self.root_hash):
            raise UsrVerityError(
                f"usr verity root hash {self.root_hash!r} is not 64 lowercase hex digits "
                "(the sha256 root hash veritysetup prints)"
            )
        if not is_hash_offset(self.hash_offset):
            raise UsrVerityError(
                f"usr verity hash offset {self.hash_offset!r} is not a positive multiple of "
                f"{VERITY_BLOCK_SIZE} (the byte where the hash tree starts in the partition)"
            )
