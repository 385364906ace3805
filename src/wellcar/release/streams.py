"""Stream feeds: ``streams/<channel>.json``, what a tool reads to find a channel's current
images, in the shape of Fedora CoreOS's stream metadata.

    {"stream": "stable",
     "metadata": {"last-modified": "2026-12-06T03:00:00Z", "generator": "wellcar ..."},
     "architectures": {"x86_64": {"artifacts": {
        "metal": {"release": "4893.0.1", "formats": {
            "raw.zst": {"disk": {"location": "stable/amd64-usr/4893.0.1/disk.img.zst",
                                  "sha256": "...", "size": 123}},
            "pxe": {"kernel": {...}, "initramfs": {...}, "rootfs": {...}}}},
        "qemu": {...}}},
     "releases": {"amd64-usr": {"version": "4893.0.1", "release-notes": "...",
                                "digests": ".../DIGESTS", "signature": ".../DIGESTS.sig"}}}

Locations are relative to the tree root (the tree is served from any URL, or mirrored);
FCOS's are absolute. The integrity of an image comes from ``DIGESTS`` and its signature
(named per board under ``releases``) or the TUF targets, not from this unsigned file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wellcar.atomic_file import write_file_atomically
from wellcar.release.boards import BOARD_ARCHITECTURES
from wellcar.release.digests import DIGESTS, SIGNATURE
from wellcar.release.image_artifacts import artifact_for_tree_name
from wellcar.release.tree import NOTES, ReleaseRecord, ReleaseTree

STREAMS_DIR = "streams"
GENERATOR = "wellcar release"


def stream_path(tree: ReleaseTree, channel: str) -> Path:
    return tree.root / STREAMS_DIR / f"{channel}.json"


def _current(records: list[ReleaseRecord]) -> dict[tuple[str, str], ReleaseRecord]:
    """The newest release of each (channel, board); records come sorted by version."""
    current: dict[tuple[str, str], ReleaseRecord] = {}
    for record in records:
        current[(record.channel, record.board)] = record
    return current


def render_stream(channel: str, current: list[ReleaseRecord], last_modified: str) -> dict[str, Any]:
    architectures: dict[str, Any] = {}
    releases: dict[str, Any] = {}
    for record in current:
        arch = BOARD_ARCHITECTURES[record.board]
        artifacts = architectures.setdefault(arch, {"artifacts": {}})["artifacts"]
        for name, info in sorted(record.artifacts.items()):
            artifact = artifact_for_tree_name(name)
            if artifact is None or artifact.stream is None or artifact.stream_format is None:
                continue
            place = artifact.stream
            platform = artifacts.setdefault(place.platform, {"release": record.version,
                                                             "formats": {}})  # fmt: skip
            roles = platform["formats"].setdefault(artifact.stream_format, {})
            # The first artifact at a place wins (disk.img before the metal platform image).
            roles.setdefault(place.role, {"location": f"{record.relative_dir}/{name}",
                                          "sha256": info.sha256, "size": info.size})  # fmt: skip
        releases[record.board] = {
            "version": record.version,
            "release-date": record.release_date,
            "release-notes": f"{record.relative_dir}/{NOTES}",
            "digests": f"{record.relative_dir}/{DIGESTS}",
            "signature": f"{record.relative_dir}/{SIGNATURE}",
            "major-software": record.major_software,
        }
    return {
        "stream": channel,
        "metadata": {"last-modified": last_modified, "generator": GENERATOR},
        "architectures": architectures,
        "releases": releases,
    }


def _iso_date(release_date: str) -> str:
    """ "2026-12-06 03:00:00 +0000" (the feed's form) as RFC 3339 UTC."""
    day, clock = release_date.split()[:2]
    return f"{day}T{clock}Z"


def write_streams(tree: ReleaseTree) -> list[Path]:
    """One stream per channel with a release; rewritten whole after every release."""
    current = _current(tree.records())
    channels = sorted({channel for channel, _ in current})
    written = []
    for channel in channels:
        mine = [r for (c, _), r in sorted(current.items()) if c == channel]
        newest = max(_iso_date(r.release_date) for r in mine)
        path = stream_path(tree, channel)
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = render_stream(channel, mine, newest)
        write_file_atomically(path, json.dumps(stream, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
