"""What a bounded read can refuse. Each component turns these into its own errors."""

from __future__ import annotations


class FetchError(Exception):
    """A network read was refused or could not finish; the message says why."""


class FetchTooLargeError(FetchError):
    """The body is (or says it is) larger than the caller allows."""


class FetchEncodedError(FetchError):
    """The server compressed the body although identity was asked."""


class FetchDeadlineError(FetchError):
    """The exchange did not finish before its wall-clock deadline."""


class RedirectRefused(FetchError):
    """Too many redirects, a downgrade from https to http, a non-http or malformed target."""
