"""Release notes from two package manifests plus changelog fragments (Flatcar's
``show-changes``): added, removed, upgraded and downgraded packages, the kernel, and the
``changelog/{security,bugfixes,changes,updates}/*.md`` bullets not in an earlier release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FRAGMENT_SECTIONS = (
    ("security", "Security fixes"),
    ("bugfixes", "Bug fixes"),
    ("changes", "Changes"),
    ("updates", "Updates"),
)
# Packages Flatcar lists as "major software" in releases.json.
MAJOR_SOFTWARE = {
    "systemd": "systemd",
    "containerd": "containerd",
    "docker.io": "docker",
    "docker-ce": "docker",
    "ignition": "ignition",
}

# --- Debian version order (dpkg's verrevcmp), so "upgraded" means upgraded ---------------


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: non-digit runs by _order, then digit runs numerically."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_debian_versions(a: str, b: str) -> int:
    """<0, 0, >0 as Debian orders versions ``[epoch:]upstream[-revision]``."""

    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


# --- manifest differences -----------------------------------------------------------------


@dataclass(frozen=True)
class PackageChanges:
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    upgraded: dict[str, tuple[str, str]] = field(default_factory=dict)
    downgraded: dict[str, tuple[str, str]] = field(default_factory=dict)


def diff_packages(old: dict[str, str], new: dict[str, str]) -> PackageChanges:
    changes = PackageChanges()
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes.added[name] = new[name]
        elif name not in new:
            changes.removed[name] = old[name]
        elif old[name] != new[name]:
            target = (
                changes.upgraded
                if compare_debian_versions(new[name], old[name]) > 0
                else changes.downgraded
            )
            target[name] = (old[name], new[name])
    return changes


def kernel_version(packages: dict[str, str]) -> str | None:
    """The kernel's version: the linux-image-<abi> package, else the metapackage."""
    specific = sorted(n for n in packages if re.match(r"^linux-image-\d", n))
    if specific:
        return specific[-1].removeprefix("linux-image-")
    for name in sorted(packages):
        if name.startswith("linux-image-"):
            return packages[name]
    return None


def major_software(packages: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    kernel = kernel_version(packages)
    if kernel:
        found["kernel"] = [kernel]
    for package, label in MAJOR_SOFTWARE.items():
        if package in packages:
            found.setdefault(label, []).append(packages[package])
    return found


# --- changelog fragments ------------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    key: str  # "section/file.md": recorded so the next release skips it
    section: str
    text: str


def read_fragments(changelog: Path | None) -> list[Fragment]:
    if changelog is None:
        return []
    fragments = []
    for section, _ in FRAGMENT_SECTIONS:
        for path in sorted((changelog / section).glob("*.md")):
            text = path.read_text(encoding="utf-8").strip()
            if text:
                fragments.append(Fragment(f"{section}/{path.name}", section, text))
    return fragments


# --- the notes ----------------------------------------------------------------------------


def render_notes(
    *,
    version: str,
    channel: str,
    previous: tuple[str, str] | None,  # (channel, version)
    old_packages: dict[str, str],
    new_packages: dict[str, str],
    fragments: list[Fragment],
) -> str:
    lines = [f"# {channel.capitalize()} {version}", ""]
    if previous is None:
        lines += ["_First release in this channel_", ""]
    else:
        lines += [f"_Changes since **{previous[0].capitalize()} {previous[1]}**_", ""]
    for section, title in FRAGMENT_SECTIONS:
        bullets = [f.text for f in fragments if f.section == section]
        if bullets:
            lines += [f"## {title}", "", *bullets, ""]
    new_kernel = kernel_version(new_packages)
    old_kernel = kernel_version(old_packages) if previous else None
    if new_kernel:
        was = f" (was {old_kernel})" if old_kernel and old_kernel != new_kernel else ""
        lines += ["## Kernel", "", f"- Linux {new_kernel}{was}", ""]
    if previous is not None:
        changes = diff_packages(old_packages, new_packages)
        groups = [
            ("Upgraded", [f"- {n} {a} → {b}" for n, (a, b) in changes.upgraded.items()]),
            ("Downgraded", [f"- {n} {a} → {b}" for n, (a, b) in changes.downgraded.items()]),
            ("Added", [f"- {n} {v}" for n, v in changes.added.items()]),
            ("Removed", [f"- {n} {v}" for n, v in changes.removed.items()]),
        ]
        if not any(items for _, items in groups):
            lines += ["## Packages", "", "No package changes.", ""]
        for title, items in groups:
            if items:
                lines += [f"## {title} packages", "", *items, ""]
    return "\n".join(lines).rstrip() + "\n"
