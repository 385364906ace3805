"""Errors of the image build: one hierarchy, each naming the step that failed."""

from __future__ import annotations

from collections.abc import Sequence


class ImageBuildError(Exception):
    """Base of every image-build failure. ``step`` names the build step (``rootfs``,
    ``usr-image``, ...) so a failure in a long build says where it happened."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


class SettingsError(ImageBuildError):
    """A build setting is missing, unknown or has a bad value (the message names the
    setting and where the value came from: a file, the command line or a default)."""

    def __init__(self, message: str) -> None:
        super().__init__("settings", message)


class MissingToolError(ImageBuildError):
    """A host program the build needs is not installed."""


class ToolError(ImageBuildError):
    """An external program failed; the message carries the tail of its output."""

    def __init__(self, step: str, argv: Sequence[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.rstrip().splitlines()[-20:])
        super().__init__(
            step,
            f"{argv[0]} failed with status {returncode}:\n{tail}"
            if tail
            else f"{argv[0]} failed with status {returncode} (no output)",
        )
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output_tail = tail


class ImageContentError(ImageBuildError):
    """The inputs or an intermediate result are not what the next step needs
    (no kernel in the rootfs, an image larger than its partition, ...)."""
