"""RFC 2397 `data:` URLs, the way Ignition configs carry inline file contents."""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from wellcar.ignition.errors import FetchError


def decode_data_url(url: str) -> bytes:
    """The bytes of a data: URL; FetchError says what is wrong with a malformed one."""
    if not url.startswith("data:"):
        raise FetchError(f"{url[:40]!r} is not a data: URL")
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise FetchError("data: URL has no ',' before its contents")
    params = header.split(";")
    if params[-1].strip().lower() == "base64":
        try:
            # Tools that wrap base64 at 76 columns put line breaks in it; Ignition's
            # decoder skips them (and other white space), so this one does too.
            text = urllib.parse.unquote_to_bytes(payload).translate(None, b" \t\r\n\f\v")
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FetchError(f"data: URL has invalid base64 contents ({exc})") from exc
    return urllib.parse.unquote_to_bytes(payload)


def encode_data_url(data: bytes, *, base64_encoded: bool) -> str:
    if base64_encoded:
        return "data:;base64," + base64.b64encode(data).decode("ascii")
    return "data:," + urllib.parse.quote(data, safe="/-_.~!$&'()*+;=:@?")
