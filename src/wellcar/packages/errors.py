"""The errors of the package set, its builds and its repository: one hierarchy, each
message one line that the CLI prints as is."""

from __future__ import annotations


class PackageError(Exception):
    """Base of every error of wellcar.packages."""


class PackageSetError(PackageError):
    """A package.toml or patches/series that does not parse or breaks a rule."""


class SourceError(PackageError):
    """The Debian source could not be fetched or did not verify."""


class PatchError(PackageError):
    """A patch of the series does not apply (names the patch and the hunk)."""


class BuildError(PackageError):
    """A package build failed; names the log and quotes its last lines."""


class RepositoryError(PackageError):
    """The apt repository could not be made, signed or verified (nothing was published)."""


class ImageOriginError(PackageError):
    """An image holds a package of the set that did not come from Wellcar's repository."""
