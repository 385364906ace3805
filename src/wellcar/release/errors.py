"""One exception hierarchy for releases; messages say what to do next."""

from __future__ import annotations


class ReleaseError(Exception):
    """A release cannot be made, promoted or published; ``str()`` is one line."""


class BuildDirError(ReleaseError):
    """The build directory is missing an artifact or does not match its SHA256SUMS."""


class ChannelError(ReleaseError):
    """An unknown channel, or a version that does not belong to the channel."""


class VersionExistsError(ReleaseError):
    """The version is already in the release tree (versions are unique)."""


class PromotionError(ReleaseError):
    """The promotion would go backwards or does not come from the same inputs."""


class PublishError(ReleaseError):
    """The update server refused or the release is not signed yet."""
