"""Unit names for paths, as systemd makes them: `systemd-escape --path --suffix=S`
(`/var/lib/my dir` is `var-lib-my\\x20dir.mount`; systemd refuses a mount unit whose
name does not match its `Where=`). systemd's own tool is used when it is installed; the
same rules in Python otherwise (tests keep the two equal)."""

from __future__ import annotations

import posixpath
import shutil
import subprocess

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def escape_path_python(path: str) -> str:
    """systemd's unit_name_path_escape: simplified path, '/' to '-', every byte that is
    not [A-Za-z0-9:_.] (and a leading '.') as \\xNN."""
    simplified = posixpath.normpath("/" + path.strip("/")).strip("/") if path.strip("/") else ""
    if not simplified:
        return "-"
    out: list[str] = []
    for index, byte in enumerate(simplified.encode()):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif char in _PLAIN and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def escape_path(path: str, suffix: str) -> str:
    """The unit name for path with the type suffix ("mount", "swap", ...)."""
    tool = shutil.which("systemd-escape")
    if tool is not None:
        done = subprocess.run(
            [tool, "--path", f"--suffix={suffix}", "--", path],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return f"{escape_path_python(path)}.{suffix}"
