"""The boards Wellcar builds for (Flatcar's names), the one place that lists them.

A board names the machine architecture of a build. ``amd64`` for ``amd64-usr`` is an easy
typo that would otherwise make a release directory no node ever asks for, so every
command that takes ``--board`` checks it here.
"""

from __future__ import annotations

import difflib

from wellcar.release.errors import ReleaseError

BOARDS: tuple[str, ...] = ("amd64-usr", "arm64-usr")
DEFAULT_BOARD = "amd64-usr"
# The architecture each board builds for, as stream feeds and `uname -m` name it.
BOARD_ARCHITECTURES: dict[str, str] = {"amd64-usr": "x86_64", "arm64-usr": "aarch64"}


class BoardError(ReleaseError):
    """A board name Wellcar does not build for."""


def check_board(name: str) -> str:
    """``name`` if it is a known board; otherwise one line with the closest match."""
    if name in BOARDS:
        return name
    guess = [b for b in BOARDS if b.startswith(name)] if name else []
    guess = guess or difflib.get_close_matches(name, BOARDS, n=1, cutoff=0.5)
    hint = f"did you mean {guess[0]}? " if guess else ""
    raise BoardError(f"unknown board {name!r}: {hint}boards are {', '.join(BOARDS)}")
