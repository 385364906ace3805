"""Asking a metadata service over HTTP: bounded retries with backoff (stdlib only).

Every request has a per-attempt timeout and the client a deadline for all of its requests
together, so a service that hangs, drips or answers 500 costs at most the deadline, after
which the caller boots on without it and says why. 404 is an answer ("not set"), not a
failure; other 4xx are final.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from wellcar.logline import log_fields

from .errors import BadMetadataError, MetadataError, ServiceUnavailableError

log = logging.getLogger(__name__)

METADATA_ADDRESS = "169.254.169.254"  # the link-local address clouds serve metadata on
WIRESERVER_ADDRESS = "168.63.129.16"  # Azure's fabric endpoint (goal state, health)
MAX_BODY = 16 << 20  # user data is at most a few MB on every cloud (EC2: 16 KiB)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_backoff_s: float = 0.5  # doubled after each failure, up to max_backoff_s
    max_backoff_s: float = 4.0
    timeout_s: float = 5.0  # one attempt: connect and each read
    deadline_s: float = 60.0  # all requests of one client together


@dataclass
class MetadataClient:
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    # Response header a genuine service sets (GCE's Metadata-Flavor: Google), or None.
    required_header: tuple[str, str] | None = None
    sleep: Callable[[float], None] = time.sleep
    _deadline: float | None = None

    def _remaining(self) -> float:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.policy.deadline_s
        return self._deadline - now

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> bytes | None:
        """The body, or None for 404. Raises ServiceUnavailableError after the retries,
        MetadataError for a final 4xx, BadMetadataError for an impostor or oversized body."""
        url = self.base_url.rstrip("/") + "/" + path.lstrip("/")
        backoff = self.policy.first_backoff_s
        last = "no attempt made"
        for attempt in range(1, self.policy.attempts + 1):
            remaining = self._remaining()
            if remaining <= 0:
                break
            try:
                return self._once(method, url, {**self.headers, **(headers or {})},
                                  min(self.policy.timeout_s, remaining), body)  # fmt: skip
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code < 500 and exc.code != 429:
                    raise MetadataError(f"{method} {url}: HTTP {exc.code} {exc.reason}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                last = str(reason) or type(exc).__name__
            log.info("metadata request failed; retrying",
                     extra=log_fields(url=url, error=last, failures=attempt,
                                      max_failures=self.policy.attempts))  # fmt: skip
            pause = min(backoff, max(0.0, self._remaining()))
            if attempt < self.policy.attempts and pause > 0:
                self.sleep(pause)
            backoff = min(backoff * 2, self.policy.max_backoff_s)
        raise ServiceUnavailableError(
            f"{method} {url}: {last} (gave up after {self.policy.attempts} tries or "
            f"{self.policy.deadline_s:g} s)"
        )

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> bytes | None:
        return self.request("GET", path, headers)

    def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.request("POST", path, headers, body)

    def text(self, path: str) -> str | None:
        body = self.get(path)
        if body is None:
            return None
        try:
            return body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadMetadataError(f"{path}: the service's answer is not UTF-8 text") from None

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        body: bytes | None = None,
    ) -> bytes:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
        # No proxies: the service is link-local, a proxy from the environment must not see it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            if self.required_header is not None:
                name, value = self.required_header
                if response.headers.get(name) != value:
                    raise BadMetadataError(f"{url}: answer lacks {name}: {value}; not the "
                                           "platform's metadata service")  # fmt: skip
            answer: bytes = response.read(MAX_BODY + 1)
        if len(answer) > MAX_BODY:
            raise BadMetadataError(f"{url}: answer larger than {MAX_BODY} bytes")
        return answer
