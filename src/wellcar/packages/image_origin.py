"""What an image build does with Wellcar's repository: the extra mmdebstrap arguments
(the repository as a mirror, pinned above Debian's) and the check afterwards that every
package of the repository the image holds is the repository's.

The pin (apt_preferences(5), priority 1001 for origin Wellcar) makes apt choose our
version even when Debian's is higher; the check makes a silent fall-back to Debian's
binary (a missing pin, a stale repository) fail the build instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .errors import ImageOriginError
from .repository import Repository, verify_repository

CHROOT_PREFERENCES = "/etc/apt/preferences.d/wellcar.pref"


def mmdebstrap_arguments(repository: Path) -> list[str]:
    """Checks the repository's signature and returns the arguments that add it: the hooks
    (before the mirror lists' positional arguments) and its sources line (last)."""
    repo = Repository(repository.resolve())
    verify_repository(repo)
    preferences = repo.preferences
    if not preferences.is_file():
        raise ImageOriginError(f"{repo.root} has no {preferences.name}; republish it")
    return [
        '--setup-hook=mkdir -p "$1"/etc/apt/preferences.d',
        f"--setup-hook=upload {preferences} {CHROOT_PREFERENCES}",
        # The node has no apt; the pin only mattered while the packages were chosen.
        f'--customize-hook=rm -f "$1"{CHROOT_PREFERENCES}',
    ]


def repository_source(repository: Path) -> str:
    return Repository(repository.resolve()).apt_line("copy")


def check_image_origin(installed: Mapping[str, str], repository: Path) -> list[str]:
    """The repository's packages the image holds (all at the repository's version), or an
    ImageOriginError naming the first that is not."""
    ours = Repository(repository.resolve()).binaries()
    wrong = [
        f"{name} {installed[name]} (ours: {version})"
        for name, version in sorted(ours.items())
        if name in installed and installed[name] != version
    ]
    if wrong:
        raise ImageOriginError(f"not from Wellcar's repository: {', '.join(wrong)}")
    return sorted(name for name in ours if name in installed)
