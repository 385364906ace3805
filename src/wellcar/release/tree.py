"""The release tree on disk: version directories, ``current`` pointers and JSON feeds.

<tree>/releases.json                         every release, keyed by version
<tree>/<channel>/releases.json               the channel's releases
<tree>/<channel>/<board>/current -> VERSION  relative symlink (sync with -L / follow)
<tree>/<channel>/<board>/<VERSION>/          artifacts, version.txt, packages.txt,
                                             DIGESTS, DIGESTS.sig, release-notes.md,
                                             release.json
<tree>/metadata/                             TUF (wellcar.trust.repository)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wellcar.atomic_file import write_file_atomically
from wellcar.image.version import OsVersion, parse_os_version
from wellcar.release.errors import ReleaseError

RECORD = "release.json"
NOTES = "release-notes.md"
FEED = "releases.json"
CURRENT = "current"


@dataclass(frozen=True)
class ArtifactInfo:
    size: int
    sha256: str


@dataclass(frozen=True)
class ReleaseRecord:
    version: str
    channel: str
    board: str
    release_date: str  # "YYYY-MM-DD HH:MM:SS +0000", as Flatcar's feed
    previous: str | None  # "channel version" the notes compare with
    promoted_from: str | None
    artifacts: dict[str, ArtifactInfo]
    major_software: dict[str, list[str]]
    changelog_seen: list[str] = field(default_factory=list)

    @property
    def os_version(self) -> OsVersion:
        return parse_os_version(self.version)

    @property
    def relative_dir(self) -> str:
        return f"{self.channel}/{self.board}/{self.version}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReleaseRecord:
        raw: dict[str, Any] = json.loads(text)
        raw["artifacts"] = {k: ArtifactInfo(**v) for k, v in raw["artifacts"].items()}
        return cls(**raw)


class ReleaseTree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def records(self) -> list[ReleaseRecord]:
        found = []
        for path in sorted(self.root.glob(f"*/*/*/{RECORD}")):
            if path.parent.name.startswith(".") or path.parent.is_symlink():
                continue
            try:
                found.append(ReleaseRecord.from_json(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, KeyError) as exc:
                raise ReleaseError(f"{path} is not a release record ({exc})") from None
        return sorted(found, key=lambda r: (r.os_version, r.board))

    def versions(self) -> list[OsVersion]:
        return [r.os_version for r in self.records()]

    def find(self, version: str, board: str) -> ReleaseRecord:
        for record in self.records():
            if record.version == version and record.board == board:
                return record
        raise ReleaseError(f"no release {version} for board {board} in {self.root}")

    def latest(self, channel: str, board: str) -> ReleaseRecord | None:
        mine = [r for r in self.records() if r.channel == channel and r.board == board]
        return mine[-1] if mine else None

    def version_dir(self, record: ReleaseRecord) -> Path:
        return self.root / record.relative_dir

    def set_current(self, record: ReleaseRecord) -> None:
        """Point ``<channel>/<board>/current`` at the release (atomic rename)."""
        link = self.root / record.channel / record.board / CURRENT
        tmp = link.with_name(f".{CURRENT}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(record.version)
        os.replace(tmp, link)

    def write_feeds(self) -> None:
        """Regenerate releases.json (all) and <channel>/releases.json from the records."""
        records = self.records()
        by_channel: dict[str, dict[str, Any]] = {}
        everything: dict[str, Any] = {}
        for record in sorted(records, key=lambda r: r.os_version, reverse=True):
            notes_path = self.version_dir(record) / NOTES
            entry = everything.setdefault(
                record.version,
                {
                    "channel": record.channel,
                    "architectures": [],
                    "release_date": record.release_date,
                    "major_software": record.major_software,
                    "release_notes": notes_path.read_text(encoding="utf-8")
                    if notes_path.exists()
                    else "",
                },
            )
            entry["architectures"] = sorted({*entry["architectures"], record.board})
            by_channel.setdefault(record.channel, {})[record.version] = entry
        write_file_atomically(self.root / FEED, json.dumps(everything, indent=2) + "\n")
        for channel, entries in by_channel.items():
            write_file_atomically(self.root / channel / FEED, json.dumps(entries, indent=2) + "\n")
