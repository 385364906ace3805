"""The update server's exception hierarchy."""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error the update server raises on purpose."""


class DatabaseError(ServerError):
    """The database cannot be reached, is of an unsupported kind, or holds bad data."""


class ConfigError(ServerError):
    """A server setting (flag, environment variable, file) is invalid."""


class NotFound(ServerError):
    """A resource named in a request does not exist."""


class Conflict(ServerError):
    """The request would break a uniqueness or consistency rule."""


class InvalidInput(ServerError):
    """A value in a request is out of range or malformed."""
