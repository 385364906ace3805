"""Fetching resources: data: URLs, http(s) (headers, timeouts, bounded retries with
backoff), oem:// files, tftp/s3/gs (cloud_sources); then gzip decompression and hash
verification, as Ignition does."""

from __future__ import annotations

import hashlib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path

from wellcar.ignition.cloud_sources import (
    ec2_role_credentials,
    fetch_gs,
    fetch_s3,
    fetch_tftp,
    gce_access_token,
)
from wellcar.ignition.dataurl import decode_data_url
from wellcar.ignition.errors import FetchError
from wellcar.ignition.types import IgnitionSection, Resource

FIRST_BACKOFF_S = 0.1  # Ignition's: 100 ms, doubling, capped at 5 s
MAX_BACKOFF_S = 5.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 6  # about 9 s of waiting in all before giving up
MAX_SIZE = 1 << 30  # a config's resource larger than 1 GiB is a mistake, not a payload
# Without timeouts.httpTotal a read still ends: a server dripping one byte before each
# header timeout must not hold first boot for ever (docs/netfetch.md).
DEFAULT_READ_DEADLINE_S = 600.0
READ_CHUNK = 1 << 16


@dataclass
class Fetcher:
    """Fetches a config's resources; one per config tree (its timeouts, proxy and CAs)."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    total_timeout_s: float | None = None
    attempts: int = DEFAULT_ATTEMPTS
    oem_dir: Path = Path("/oem")
    proxies: dict[str, str] = field(default_factory=dict)
    ca_pem: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep

    def configure(self, section: IgnitionSection) -> None:
        """Take timeouts and proxies from a config's ignition section (CAs: add_ca)."""
        if section.timeouts.http_response_headers:
            self.header_timeout_s = float(section.timeouts.http_response_headers)
        if section.timeouts.http_total:
            self.total_timeout_s = float(section.timeouts.http_total)
        proxy = section.proxy
        if proxy.http_proxy:
            self.proxies["http"] = proxy.http_proxy
        if proxy.https_proxy:
            self.proxies["https"] = proxy.https_proxy
        if proxy.no_proxy:
            self.proxies["no"] = ",".join(proxy.no_proxy)

    def add_ca(self, pem: bytes) -> None:
        self.ca_pem.append(pem.decode("ascii", errors="replace"))

    def fetch(self, resource: Resource, where: str) -> bytes:
        """The verified, decompressed bytes of resource; where is its JSON path for errors."""
        source = resource.source
        if not source:  # none, or empty: Ignition's util.NilOrEmpty
            return b""
        scheme = urllib.parse.urlsplit(source).scheme.lower()
        try:
            if scheme == "data":
                raw = decode_data_url(source)
            elif scheme in ("http", "https"):
                headers = {h.name: h.value or "" for h in resource.http_headers}
                raw = self._http(source, headers)
            elif scheme == "oem":
                raw = self._oem(source)
            elif scheme == "tftp":
                deadline = time.monotonic() + self._deadline_s()
                raw = fetch_tftp(
                    source, timeout_s=self.header_timeout_s, deadline=deadline, limit=MAX_SIZE
                )
            elif scheme in ("s3", "arn"):
                raw = fetch_s3(source, self._http, self._head, instance_role=ec2_role_credentials)
            elif scheme == "gs":
                raw = fetch_gs(source, self._http, access_token=gce_access_token)
            else:
                raise FetchError(f"cannot fetch {scheme}: URLs")
            data = _decompress(raw, resource.compression)
            _verify(data, resource.verification.hash)
        except FetchError as exc:
            raise FetchError(f"{where}: {exc}") from None
        return data

    def _oem(self, source: str) -> bytes:
        relative = urllib.parse.unquote(urllib.parse.urlsplit(source).path).lstrip("/")
        netloc = urllib.parse.urlsplit(source).netloc
        parts = [p for p in f"{netloc}/{relative}".split("/") if p]
        if ".." in parts:
            raise FetchError(f"{source}: '..' is not allowed in oem:// URLs")
        path = self.oem_dir.joinpath(*parts)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror}") from None

    def _deadline_s(self) -> float:
        return self.total_timeout_s or DEFAULT_READ_DEADLINE_S

    def bypasses_proxy(self, url: str) -> bool:
        """Whether noProxy names url's host: urllib's rule for no_proxy (exact hosts,
        domain suffixes, "*"), which is the environment rule Ignition's Go client uses."""
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
        no_proxy = self.proxies.get("no")
        return bool(no_proxy) and bool(
            urllib.request.proxy_bypass_environment(host, {"no": no_proxy})  # type: ignore[attr-defined]
        )

    def _opener(self, url: str) -> urllib.request.OpenerDirector:
        context = ssl.create_default_context()
        if self.ca_pem:
            context.load_verify_locations(cadata="\n".join(self.ca_pem))
        proxies = {k: v for k, v in self.proxies.items() if k != "no"}
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler({} if self.bypasses_proxy(url) else proxies),
            urllib.request.HTTPSHandler(context=context),
        ]
        return urllib.request.build_opener(*handlers)

    def _head(self, url: str) -> dict[str, str]:
        """One HEAD request's response headers (lower-case names), an error's included."""
        request = urllib.request.Request(url, method="HEAD")
        try:
            with self._opener(url).open(request, timeout=self.header_timeout_s) as response:
                return {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            return {k.lower(): v for k, v in exc.headers.items()}
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f"{url}: {getattr(exc, 'reason', exc)}") from None

    def _http(self, url: str, headers: dict[str, str]) -> bytes:
        opener = self._opener(url)
        started = time.monotonic()
        backoff = FIRST_BACKOFF_S
        last = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(
                url, headers={"Accept-Encoding": "identity", **headers}
            )
            try:
                with opener.open(request, timeout=self.header_timeout_s) as response:
                    return _read_bounded(response, url, started + self._deadline_s())
            except urllib.error.HTTPError as exc:
                if exc.code < 500:  # a 4xx will not get better by asking again
                    raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                last = f"HTTP {exc.code} {exc.reason}"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = str(reason)
            if self.total_timeout_s and time.monotonic() - started + backoff > self.total_timeout_s:
                break
            if attempt < self.attempts:
                self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        raise FetchError(f"{url}: unreachable after {attempt} attempt(s) ({last})")


def _read_bounded(response: HTTPResponse, url: str, deadline: float) -> bytes:
    """The body in chunks as they arrive: at most MAX_SIZE bytes, and not past ``deadline``
    (checked at every read; each read waits at most the header timeout)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError(f"{url}: not complete in time ({total} bytes so far)")
        chunk = response.read1(READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_SIZE:
            raise FetchError(f"{url}: larger than {MAX_SIZE} bytes")
        chunks.append(chunk)


def _decompress(data: bytes, compression: str | None) -> bytes:
    """gzip contents, refusing output over MAX_SIZE (a small bomb must not fill memory)."""
    if not compression:
        return data
    if compression != "gzip":
        raise FetchError(f"unknown compression {compression!r}")
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:  # gzip members may be concatenated
            member = zlib.decompressobj(wbits=31)
            chunk = member.decompress(rest, MAX_SIZE + 1 - total)
            total += len(chunk)
            if total > MAX_SIZE or member.unconsumed_tail:
                raise FetchError(f"contents decompress to more than {MAX_SIZE} bytes")
            if not member.eof:
                raise FetchError("contents are not valid gzip (truncated)")
            out.append(chunk)
            rest = member.unused_data
    except zlib.error as exc:
        raise FetchError(f"contents are not valid gzip ({exc})") from None
    return b"".join(out)


def _verify(data: bytes, expected: str | None) -> None:
    if not expected:
        return
    algorithm, _, digest = expected.partition("-")
    if algorithm not in ("sha256", "sha512"):
        raise FetchError(f"unknown hash algorithm {algorithm!r}")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != digest.lower():
        raise FetchError(
            f"{algorithm} mismatch: the config expects {digest[:16]}..., the data has "
            f"{actual[:16]}...; fix verification.hash or the file"
        )
