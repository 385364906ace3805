"""The metadata agent's errors: one hierarchy."""

from __future__ import annotations


class MetadataError(Exception):
    """Base of every metadata failure; the message is one line for the console."""


class ServiceUnavailableError(MetadataError):
    """The metadata service did not answer usefully within the retry budget (absent,
    hanging, 5xx)."""


class BadMetadataError(MetadataError):
    """The service answered, but with something that is not metadata (garbage)."""
