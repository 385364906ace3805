"""Channels and the versions they get (Flatcar's scheme, from wellcar.image.version).

MINOR names the channel: 0 alpha, 1 beta, 2 stable, 3 lts. Promotion goes up that list
and keeps MAJOR (the build day); PATCH counts point releases. Custom channels (``edge``,
``customer-x``) carry a MINOR of their own choosing (``--minor``); PATCH is allocated
over the whole tree so no two channels ever share a version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from wellcar.image.version import CHANNELS, OsVersion, major_for
from wellcar.release.errors import ChannelError, PromotionError
from wellcar.trust.channels import CHANNEL_NAME


def check_channel(name: str) -> str:
    if not CHANNEL_NAME.fullmatch(name):
        raise ChannelError(
            f"channel {name!r}: use lowercase letters, digits and '-' (alpha, beta, "
            "stable, lts or a custom name)"
        )
    return name


def channel_minor(channel: str, minor: int | None = None) -> int:
    """The MINOR of a channel's versions; custom channels must say theirs."""
    check_channel(channel)
    if channel in CHANNELS:
        if minor is not None and minor != CHANNELS.index(channel):
            raise ChannelError(f"channel {channel} always has MINOR {CHANNELS.index(channel)}")
        return CHANNELS.index(channel)
    if minor is None:
        raise ChannelError(
            f"{channel!r} is a custom channel: give its MINOR with --minor "
            f"(0-3 are {', '.join(CHANNELS)})"
        )
    if minor < 0:
        raise ChannelError("--minor must be 0 or more")
    return minor


def next_version(major: int, minor: int, existing: Iterable[OsVersion]) -> OsVersion:
    """MAJOR.MINOR.PATCH with the first PATCH not used by any release in the tree."""
    used = {v.patch for v in existing if (v.major, v.minor) == (major, minor)}
    patch = max(used) + 1 if used else 0
    return OsVersion(major, minor, patch)


def version_for_channel(
    when: datetime, channel: str, existing: Iterable[OsVersion], minor: int | None = None
) -> OsVersion:
    return next_version(major_for(when), channel_minor(channel, minor), existing)


def check_build_version(version: OsVersion, channel: str) -> None:
    """A build for a standard channel must carry that channel's MINOR."""
    if channel in CHANNELS and version.minor != CHANNELS.index(channel):
        raise ChannelError(
            f"the build is version {version} (MINOR {version.minor} = "
            f"{version.channel}) but channel {channel} needs MINOR {CHANNELS.index(channel)}: "
            f"rebuild with `wellcar build --version {version.major}."
            f"{CHANNELS.index(channel)}.0`"
        )


def promotion_version(
    source: OsVersion, source_channel: str, target_channel: str,
    existing: Iterable[OsVersion], minor: int | None = None,
) -> OsVersion:  # fmt: skip
    """The version a promotion gets, or PromotionError if it would go backwards."""
    if target_channel == source_channel:
        raise PromotionError(f"{source} is already in {target_channel}")
    standard = source_channel in CHANNELS and target_channel in CHANNELS
    if standard and CHANNELS.index(target_channel) < CHANNELS.index(source_channel):
        raise PromotionError(
            f"promoting {source} from {source_channel} to {target_channel} goes backwards "
            f"({' → '.join(CHANNELS)}); nothing was published"
        )
    return next_version(source.major, channel_minor(target_channel, minor), existing)
