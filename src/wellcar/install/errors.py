"""One exception family for `wellcar install`; ``str()`` is the one line the user sees."""

from __future__ import annotations


class InstallError(Exception):
    """The install cannot go on; the message says what is wrong and what to do."""


class TargetError(InstallError):
    """The target is not a disk the installer may write: missing, not a whole disk,
    mounted or in use, the disk the installer runs from, read-only, too small."""


class SourceError(InstallError):
    """The image cannot be had: unknown channel or version, 404, no network, truncated."""


class VerificationError(InstallError):
    """The image is not the one the release keys signed (signature or hash mismatch)."""


class ImageFormatError(InstallError):
    """The bytes are not a (zstd, gzip or raw) disk image with a GPT."""


class IgnitionConfigError(InstallError):
    """The Ignition config given with -i does not validate."""


class PlacementError(InstallError):
    """The config, OEM id or GPT fix-up could not be written after the image."""
