"""The one exception family of `wellcar.ignition`: every message names where and what to do."""

from __future__ import annotations

from wellcar.ignition.report import Report


class IgnitionError(Exception):
    """Provisioning cannot go on; the message is the one line a user needs."""


class ConfigInvalidError(IgnitionError):
    """A config breaks the spec; the report lists every problem with its JSON path."""

    def __init__(self, report: Report, origin: str = "config") -> None:
        self.report = report
        self.origin = origin
        first = report.errors[0] if report.errors else None
        more = len(report.errors) - 1
        summary = str(first) if first else "invalid config"
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(f"{origin}: {summary}")


class UnsupportedVersionError(ConfigInvalidError):
    """`ignition.version` names a spec this implementation does not speak."""


class FetchError(IgnitionError):
    """A resource could not be fetched, decompressed or verified."""


class ApplyError(IgnitionError):
    """The config is valid but cannot be applied to this machine as it is."""


class UnsafePathError(ApplyError):
    """A path would leave the target root (`..`, or a symlink pointing outside)."""


class ConflictError(ApplyError):
    """Something already on the machine contradicts the config (a user, a file, a partition)."""
