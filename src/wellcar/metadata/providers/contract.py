"""What every provider is and is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..model import Metadata
from ..service import METADATA_ADDRESS, RetryPolicy


class Provider(Protocol):
    name: str  # afterburn's provider name

    def metadata(self) -> Metadata: ...

    def user_data(self) -> bytes | None: ...


@dataclass(frozen=True)
class ProviderSettings:
    """Where the services are; tests point them at emulators."""

    base_url: str = f"http://{METADATA_ADDRESS}"
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    config_drive: Path | None = None  # a mounted config drive (OpenStack); None: find one
