"""One exception hierarchy for trust: every message says what to do next.

Importable on the node (no third-party imports).
"""

from __future__ import annotations


class TrustError(Exception):
    """Anything trust-related went wrong; ``str()`` is one line for the user."""


# --- repository side (the release machine) -------------------------------------------


class TrustRepositoryError(TrustError):
    """The TUF repository is missing, inconsistent, or the operation cannot be done."""


class KeyFileError(TrustError):
    """A key file is missing, unreadable or of the wrong kind."""


class SigningKeyError(TrustError):
    """The keys at hand cannot sign this role (wrong key, or fewer than its threshold)."""


class RootExpiredError(TrustRepositoryError):
    """The repository's root has expired: nothing can be published until root is rotated."""


# --- node side (the agent's verifier) --------------------------------------------------


class MetadataRefreshError(TrustError):
    """Fresh, correctly signed metadata could not be obtained; install nothing."""


class MetadataUnavailableError(MetadataRefreshError):
    """The mirror could not be reached or answered with an HTTP error."""


class MetadataTooLargeError(MetadataRefreshError):
    """A mirror sent more bytes than the file may have (endless-data attack)."""


class MetadataSignatureError(MetadataRefreshError):
    """Metadata is not signed by a threshold of the keys root names for it."""


class MetadataRollbackError(MetadataRefreshError):
    """Metadata is older than what this node already trusts (rollback or mix-and-match)."""


class MetadataExpiredError(MetadataRefreshError):
    """Metadata has expired (freeze attack, or the repository stopped re-signing)."""


class MetadataInconsistentError(MetadataRefreshError):
    """Metadata does not match what the snapshot/timestamp pinned (mix-and-match)."""


class TargetRejectedError(TrustError):
    """A payload or image must not be installed."""


class UnknownTargetError(TargetRejectedError):
    """The file is not a target the release keys signed."""


class TargetMismatchError(TargetRejectedError):
    """The file's length or hashes differ from what the release keys signed."""


class TargetDowngradeError(TargetRejectedError):
    """The signed target is a release older than the running one."""


class TargetBoardError(TargetRejectedError):
    """The signed target is for another board."""


class TargetChannelError(TargetRejectedError):
    """The signed target belongs to another channel than the node follows."""
