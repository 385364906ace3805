"""Every network read a node does, bounded: bytes, time and encoding.

A node talks to servers it does not control (an update server, a release mirror, whatever
an Ignition config names). This package owns the rules each read follows, so no component
gets them wrong on its own:

- **no transparent decoding**: ``Accept-Encoding: identity`` is asked and a response that
  is compressed anyway is refused (a 2.5 KB gzip bomb once grew the agent past 3 GiB);
- **a byte cap before anything is held**: the raw body is counted as it arrives;
- **a wall-clock deadline** enforced by a timer that shuts the connection's socket down,
  independently of the data flow (one byte every 59 s used to hold a check for weeks);
- **bounded redirects** with https never falling back to http.

Stdlib and httpx only (Debian's python3-httpx on the node). See docs/netfetch.md.
"""

from wellcar.netfetch.body import IDENTITY, raw_chunks, read_capped, refuse_encoded
from wellcar.netfetch.deadline import Deadline
from wellcar.netfetch.errors import (
    FetchDeadlineError,
    FetchEncodedError,
    FetchError,
    FetchTooLargeError,
    RedirectRefused,
)
from wellcar.netfetch.redirects import MAX_REDIRECTS, send_following_redirects

__all__ = [
    "IDENTITY",
    "MAX_REDIRECTS",
    "Deadline",
    "FetchDeadlineError",
    "FetchEncodedError",
    "FetchError",
    "FetchTooLargeError",
    "RedirectRefused",
    "raw_chunks",
    "read_capped",
    "refuse_encoded",
    "send_following_redirects",
]
