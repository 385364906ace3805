"""Errors of the live media: one hierarchy; each message is one line for the CLI."""

from __future__ import annotations


class LiveError(Exception):
    """Base of every live ISO / PXE failure."""


class NotLiveMediaError(LiveError):
    """The file given is not a live ISO (or live initrd) this tool made."""


class CustomizeInputError(LiveError):
    """A customization input is unusable: a config that does not validate, an output
    that exists, a device path that is not one."""


class ArtifactBuildError(LiveError):
    """Making the ISO or PXE files failed (a tool, a missing build output)."""
