"""Exceptions raised by the Omaha codec.

Every failure to turn bytes into a message is an :class:`OmahaParseError` (or a
subclass) carrying a short, stable ``reason`` string that is safe to use as a
metric label or log field, and a human message that names the element,
attribute or limit involved. Nothing else escapes ``parse_request`` /
``parse_response``: the fuzz tests hold the codec to that.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Machine-readable cause of a parse failure (``OmahaParseError.reason``)."""

    BODY_TOO_LARGE = "body-too-large"
    EMPTY_BODY = "empty-body"
    BAD_CONTENT_TYPE = "bad-content-type"
    BAD_ENCODING = "bad-encoding"
    FORBIDDEN_DTD = "forbidden-dtd"
    FORBIDDEN_ENTITY = "forbidden-entity"
    NOT_XML = "not-xml"
    TOO_DEEP = "too-deep"
    TOO_MANY_ELEMENTS = "too-many-elements"
    TOO_MANY_APPS = "too-many-apps"
    TOO_MANY_EVENTS = "too-many-events"
    ATTRIBUTE_TOO_LONG = "attribute-too-long"
    WRONG_ROOT = "wrong-root"
    BAD_PROTOCOL = "bad-protocol"
    MISSING_ATTRIBUTE = "missing-attribute"
    BAD_ATTRIBUTE = "bad-attribute"


class OmahaError(Exception):
    """Base class of every error raised by :mod:`wellcar.omaha`."""


class OmahaParseError(OmahaError):
    """The body is not an acceptable Omaha message.

    ``reason`` is one of :class:`Reason`. ``http_status`` is the status a server
    should answer with (a hint; Nebraska answers 400 to every malformed request).
    """

    http_status: int = 400

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message: str = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason.value!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduction calls cls(*args) = cls(message), which does not
        # match __init__; keep the errors picklable for multi-process servers.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(
    cls: type[OmahaParseError], args: tuple[Any, ...], state: dict[str, Any]
) -> OmahaParseError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class TransportError(OmahaParseError):
    """Problems with the envelope: content type, size, character encoding."""


class BodyTooLargeError(TransportError):
    http_status = 413


class ContentTypeError(TransportError):
    http_status = 415


class EncodingError(TransportError):
    pass


class ForbiddenXMLError(OmahaParseError):
    """The body uses XML features that Omaha never needs and attackers love
    (DTDs, entity declarations and references: billion laughs, XXE)."""


class ForbiddenDTDError(ForbiddenXMLError):
    pass


class ForbiddenEntityError(ForbiddenXMLError):
    pass


class MalformedXMLError(OmahaParseError):
    """Not well-formed XML (including empty and truncated bodies)."""


class LimitExceededError(OmahaParseError):
    """Well-formed XML that is bigger than any real Omaha message
    (too deep, too many elements/apps/events, over-long attribute)."""


class SchemaError(OmahaParseError):
    """Well-formed XML that is not a valid Omaha message: wrong root element,
    protocol version, missing or malformed attributes."""

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        element: str | None = None,
        attribute: str | None = None,
    ) -> None:
        super().__init__(reason, message)
        self.element: str | None = element
        self.attribute: str | None = attribute
