"""What every provider is and is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..model import Metadata
from ..service import METADATA_ADDRESS, WIRESERVER_ADDRESS, RetryPolicy


class Provider(Protocol):
    name: str  # afterburn's provider name

    def metadata(self) -> Metadata: ...

    def user_data(self) -> bytes | None: ...


@runtime_checkable
class BootCheckIn(Protocol):
    """A provider whose platform waits to be told that the node booted (afterburn's
    ``--check-in``): Azure considers a VM unprovisioned until it reports Ready."""

    def check_in(self) -> str:
        """Report the boot; returns what was reported, for the console."""
        ...


@dataclass(frozen=True)
class ProviderSettings:
    """Where the services are; tests point them at emulators."""

    base_url: str = f"http://{METADATA_ADDRESS}"
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    config_drive: Path | None = None  # a mounted config drive (OpenStack); None: find one
    # Azure's wireserver (goal state, health reports). afterburn asks DHCP option 245
    # first; every Azure region answers on this fixed address, so it is used directly.
    wireserver_url: str = f"http://{WIRESERVER_ADDRESS}"
