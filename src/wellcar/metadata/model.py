"""What a platform tells a node."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Metadata:
    provider: str
    hostname: str | None = None
    ssh_keys: tuple[str, ...] = ()  # OpenSSH public key lines for core
    # COREOS_<PLATFORM>_<NAME> -> value, as Flatcar's afterburn writes them
    attributes: dict[str, str] = field(default_factory=dict)
