"""Channels and the versions they get (Flatcar's scheme, from wellcar.image.version).

MINOR names the channel: 0 alpha, 1 beta, 2 stable, 3 lts. Promotion goes up that list
and keeps MAJOR (the build day); PATCH counts point releases. Custom channels (``edge``,
``customer-x``) carry a MINOR of their own choosing (``--minor``), 4 or more: a custom
build numbered like a stable one would read as stable everywhere a version is shown.
PATCH is allocated over the whole tree so no two channels ever share a version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from wellcar.image.version import CHANNELS, OsVersion, major_for
from wellcar.release.errors import ChannelError, PromotionError
from wellcar.trust.channels import CHANNEL_NAME

FIRST_CUSTOM_MINOR = len(CHANNELS)  # 0-3 belong to the standard channels


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
            f"{channel!r} is a custom channel: give its MINOR with --minor, "
            f"{FIRST_CUSTOM_MINOR} or more (0-3 are {', '.join(CHANNELS)})"
        )
    _check_custom_minor(channel, minor)
    return minor


def _check_custom_minor(channel: str, minor: int) -> None:
    if 0 <= minor < FIRST_CUSTOM_MINOR:
        raise ChannelError(
            f"custom channel {channel} cannot use MINOR {minor}, which is "
            f"{CHANNELS[minor]}'s: give it a MINOR of its own, {FIRST_CUSTOM_MINOR} or more "
            f"(`wellcar release version --channel {channel} --minor {FIRST_CUSTOM_MINOR}`)"
        )
    if minor < 0:
        raise ChannelError(f"--minor must be {FIRST_CUSTOM_MINOR} or more for a custom channel")


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
    """A build for a standard channel must carry that channel's MINOR; one for a custom
    channel must not carry a standard channel's."""
    if channel not in CHANNELS and version.minor < FIRST_CUSTOM_MINOR:
        raise ChannelError(
            f"the build is version {version}, a {version.channel} version (MINOR "
            f"{version.minor}), but {channel} is a custom channel that needs a MINOR of its "
            f"own, {FIRST_CUSTOM_MINOR} or more: rebuild with `wellcar build --version "
            f"{version.major}.{FIRST_CUSTOM_MINOR}.0` (see `wellcar release version "
            f"--channel {channel} --minor {FIRST_CUSTOM_MINOR}`)"
        )
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
