"""How long each role's metadata stays valid, kept next to the repository's metadata.

Root and targets are signed offline, so they live long; snapshot and timestamp are
re-signed by an online job (``wellcar trust refresh``), so they are short: a node that
is fed old metadata notices within a timestamp lifetime (freeze attack).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from wellcar.trust.errors import TrustRepositoryError

POLICY_FILE = "trust-policy.json"
DAY = 86400


@dataclass(frozen=True)
class ExpiryPolicy:
    root_seconds: int = 365 * DAY
    targets_seconds: int = 90 * DAY
    snapshot_seconds: int = 7 * DAY
    timestamp_seconds: int = 1 * DAY

    def lifetime(self, role: str) -> timedelta:
        seconds = {
            "root": self.root_seconds,
            "targets": self.targets_seconds,
            "snapshot": self.snapshot_seconds,
            "timestamp": self.timestamp_seconds,
        }[role]
        return timedelta(seconds=seconds)

    def check(self) -> None:
        values = asdict(self)
        if any(int(v) <= 0 for v in values.values()):
            raise TrustRepositoryError("every expiry must be a positive number of seconds")
        if self.timestamp_seconds > self.snapshot_seconds:
            raise TrustRepositoryError(
                "timestamp expiry must not exceed snapshot expiry (freshness comes from it)"
            )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> ExpiryPolicy:
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            policy = cls(**{k: int(v) for k, v in raw.items()})
        except (ValueError, TypeError) as exc:
            raise TrustRepositoryError(f"{path}: not a valid expiry policy ({exc})") from None
        policy.check()
        return policy
