"""Validation reports: errors are fatal, warnings (such as unknown keys) are not."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Entry:
    severity: Severity
    path: str  # JSON path in the config as the user wrote it, e.g. $.storage.files[0].mode
    message: str

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.path}: {self.message}"


@dataclass
class Report:
    entries: list[Entry] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.entries.append(Entry(Severity.ERROR, path, message))

    def warn(self, path: str, message: str) -> None:
        self.entries.append(Entry(Severity.WARNING, path, message))

    def extend(self, other: Report) -> None:
        self.entries.extend(other.entries)

    @property
    def errors(self) -> list[Entry]:
        return [e for e in self.entries if e.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Entry]:
        return [e for e in self.entries if e.severity is Severity.WARNING]

    @property
    def has_errors(self) -> bool:
        return any(e.severity is Severity.ERROR for e in self.entries)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.entries)


def child(path: str, key: str | int) -> str:
    """The JSON path of a member (str) or an array element (int) below path."""
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


ROOT = "$"
