"""The release tree's web page: ``index.html`` at the tree root, as flatcar.org/releases
shows Flatcar's. Per channel the current version; per release its date, kernel and major
software, notes (``release-notes.md`` rendered), artifacts with size and SHA-256, and
links to DIGESTS, its signature and the package list. Written from the release records
after every release (static: the tree is served by any web server or mirrored as is).

The notes are Markdown written by the release (package changes) and by the vendor's
changelog fragments; raw HTML in them is escaped, never passed through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from wellcar.atomic_file import write_file_atomically
from wellcar.image.version import CHANNELS
from wellcar.release.streams import STREAMS_DIR
from wellcar.release.tree import FEED, NOTES, ReleaseRecord, ReleaseTree

PAGE = "index.html"
TITLE = "Wellcar releases"

_environment = Environment(
    loader=PackageLoader("wellcar.release", "templates"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)
# CommonMark without raw HTML: a fragment cannot inject markup or scripts into the page.
_markdown = MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True)
class ArtifactRow:
    name: str
    href: str
    size: str
    sha256: str


def human_size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _release_view(tree: ReleaseTree, record: ReleaseRecord, current: bool) -> dict[str, object]:
    notes = tree.version_dir(record) / NOTES
    text = notes.read_text(encoding="utf-8") if notes.exists() else ""
    software = sorted(record.major_software.items(), key=lambda kv: (kv[0] != "kernel", kv[0]))
    return {
        "version": record.version,
        "board": record.board,
        "date": record.release_date,
        "previous": record.previous,
        "promoted_from": record.promoted_from,
        "current": current,
        "anchor": f"{record.channel}-{record.version}-{record.board}",
        "dir": record.relative_dir,
        "major_software": [(name, ", ".join(v)) for name, v in software],
        "artifacts": [
            ArtifactRow(name, f"{record.relative_dir}/{name}", human_size(info.size), info.sha256)
            for name, info in sorted(record.artifacts.items())
        ],
        "notes_html": Markup(_markdown.render(text)),
    }


def _channel_order(name: str) -> tuple[int, str]:
    known = list(CHANNELS)
    return (known.index(name) if name in known else len(known), name)


def render_release_page(tree: ReleaseTree, generated: datetime, title: str = TITLE) -> str:
    records = tree.records()
    newest: dict[tuple[str, str], ReleaseRecord] = {}
    for record in records:  # sorted by version: the last one of a channel is current
        newest[(record.channel, record.board)] = record
    channels = []
    for name in sorted({r.channel for r in records}, key=_channel_order):
        mine = [r for r in reversed(records) if r.channel == name]
        channels.append(
            {
                "name": name,
                "stream": f"{STREAMS_DIR}/{name}.json",
                "current": sorted((b, r.version) for (c, b), r in newest.items() if c == name),
                "releases": [_release_view(tree, r, newest[(name, r.board)] is r) for r in mine],
            }
        )
    return _environment.get_template("releases.html").render(
        title=title,
        generated=generated.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        feed=FEED,
        channels=channels,
    )


def write_release_page(tree: ReleaseTree, generated: datetime) -> Path:
    path = tree.root / PAGE
    write_file_atomically(path, render_release_page(tree, generated))
    return path
