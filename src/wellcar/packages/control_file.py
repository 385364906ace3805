"""Debian control-file paragraphs (deb822): .dsc, Packages, Release, .changes."""

from __future__ import annotations

_PGP_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_PGP_SIG = "-----BEGIN PGP SIGNATURE-----"


def strip_clearsign(text: str) -> str:
    """The signed text of a clearsigned file (no verification: that is gpgv's job)."""
    if not text.startswith(_PGP_BEGIN):
        return text
    lines = text.splitlines()
    body_start = lines.index("") + 1  # after the Hash: armor headers
    body_end = lines.index(_PGP_SIG) if _PGP_SIG in lines else len(lines)
    return (
        "\n".join(
            line[2:] if line.startswith("- ") else line for line in lines[body_start:body_end]
        )
        + "\n"
    )


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 file; continuation lines are joined with newlines, field names
    keep their case (lookups in Debian files are by the canonical spelling)."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in strip_clearsign(text).splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, last = {}, None
            continue
        if line.startswith("#"):
            continue
        if line[0] in " \t" and last is not None:
            current[last] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = key.strip()
        current[last] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def render_paragraph(fields: dict[str, str]) -> str:
    out = []
    for key, value in fields.items():
        first, *rest = value.split("\n")
        out.append(f"{key}: {first}".rstrip())
        out.extend(f" {line}" if line else " ." for line in rest)
    return "\n".join(out) + "\n"
