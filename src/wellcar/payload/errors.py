"""Exceptions raised by :mod:`wellcar.payload`.

Every problem with a payload, a key or a target is a :class:`PayloadError`; the CLI prints
its message as one line. Messages name the part that is wrong (the operation index, the
field, the offset) and, where there is one, what the user can do about it.
"""

from __future__ import annotations


class PayloadError(Exception):
    """Base class of every error raised by :mod:`wellcar.payload`."""


class PayloadFormatError(PayloadError):
    """The bytes are not a well-formed payload: framing, manifest or a limit."""


class PayloadTruncatedError(PayloadFormatError):
    """The payload ended before the manifest said it would."""


class PayloadUnavailableError(PayloadError):
    """The payload cannot be fetched right now (server busy, network down); retry later."""


class PayloadIntegrityError(PayloadError):
    """Data does not match the hash the manifest records for it."""


class PayloadSignatureError(PayloadError):
    """No signature by a trusted key verifies, or the payload is not signed at all."""


class PayloadKeyError(PayloadError):
    """A key file cannot be read or is of a kind Wellcar does not sign with."""


class SourceMismatchError(PayloadError):
    """A delta payload was made for a different source image than the one given."""


class TargetError(PayloadError):
    """The target cannot take this payload: too small, missing, or not writable."""


class ResumeStateError(PayloadError):
    """The saved progress of an interrupted apply does not belong to this payload/target."""
