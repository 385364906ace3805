"""Sending a request and following redirects by hand, under the node's rules."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import httpx

from wellcar.netfetch.deadline import Deadline
from wellcar.netfetch.errors import RedirectRefused

MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def send_following_redirects(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    content: bytes | None = None,
    timeout: float,
    max_redirects: int = MAX_REDIRECTS,
    auth: tuple[str, str] | None = None,
    deadline: Deadline | None = None,
) -> httpx.Response:
    """Send and follow up to ``max_redirects`` redirects by hand, returning the
    final response unread (``stream=True``; the caller closes it).

    By hand because the rules differ from httpx's: every redirect re-sends the
    same method and body (an Omaha server only answers POST, so turning it into
    a GET as browsers do for 301-303 could only fail), https may never lead to
    http, and credentials go only to the origin they were configured for.
    With a ``deadline`` (entered by the caller), every connection is watched by it.
    """
    current = url
    origin = urlsplit(url)[:2]
    extensions = deadline.extensions if deadline is not None else None
    for _ in range(max_redirects + 1):
        if deadline is not None:
            deadline.check()
        try:
            same_origin = urlsplit(current)[:2] == origin
            request = http.build_request(
                method,
                current,
                headers=headers,
                content=content,
                timeout=timeout,
                extensions=extensions,
            )
        except (httpx.InvalidURL, ValueError):
            raise RedirectRefused(f"not a usable URL: {current[:200]!r}") from None
        try:
            response = http.send(
                request,
                stream=True,
                follow_redirects=False,
                auth=auth if (auth is not None and same_origin) else None,
            )
        except httpx.RemoteProtocolError as exc:
            # httpx parses Location even when not following it; a malformed one
            # is the server's answer, not a network failure.
            if str(exc).startswith("Invalid URL in location header"):
                raise RedirectRefused(f"unusable redirect target: {exc}") from None
            raise
        location = response.headers.get("location")
        if response.status_code not in _REDIRECT_STATUSES or not location:
            return response
        response.close()
        current = _redirect_target(current, location)
    raise RedirectRefused(f"more than {max_redirects} redirects from {url}")


def _redirect_target(current: str, location: str) -> str:
    try:
        target = urljoin(current, location)
        parts = urlsplit(target)
        _ = parts.port  # ValueError on a bad port
    except ValueError:
        raise RedirectRefused(f"unusable redirect target: {location[:200]!r}") from None
    if parts.scheme not in ("http", "https"):
        raise RedirectRefused(f"redirect to a non-http URL refused: {target[:200]}")
    if urlsplit(current).scheme == "https" and parts.scheme == "http":
        raise RedirectRefused(f"redirect from https to http refused: {target[:200]}")
    if not parts.hostname or any(c.isspace() or ord(c) < 0x20 for c in target):
        raise RedirectRefused(f"unusable redirect target: {location[:200]!r}")
    return target
