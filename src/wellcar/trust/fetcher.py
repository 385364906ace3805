"""python-tuf's download interface over httpx (Debian's python3-httpx on the node).

python-tuf caps every download at the file's maximum length (metadata) or its signed
length (targets) and stops reading beyond it; this fetcher adds what the TUF
specification leaves to implementations against slow retrieval: a timeout on every
network operation and a deadline for the whole file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

CHUNK = 64 * 1024


class HttpxFetcher(FetcherInterface):
    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        timeout: float = 30.0,
        deadline_seconds: float = 3600.0,
        user_agent: str = "wellcar-trust",
    ) -> None:
        self._client = client or httpx.Client(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": user_agent}
        )
        self._deadline_seconds = deadline_seconds

    def close(self) -> None:
        self._client.close()

    def _fetch(self, url: str) -> Iterator[bytes]:
        # The request is made here, not lazily, so HTTP errors surface from fetch()
        # (which python-tuf turns into DownloadError) rather than mid-iteration.
        started = time.monotonic()
        try:
            request = self._client.build_request("GET", url)
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(f"{url}: no answer in time") from exc
        except httpx.HTTPError as exc:
            raise exceptions.DownloadError(f"cannot fetch {url}: {exc}") from exc
        if response.status_code >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response, started)

    def _chunks(self, url: str, response: httpx.Response, started: float) -> Iterator[bytes]:
        try:
            for chunk in response.iter_bytes(CHUNK):
                if time.monotonic() - started > self._deadline_seconds:
                    raise exceptions.SlowRetrievalError(
                        f"{url}: not complete after {self._deadline_seconds:.0f} s"
                    )
                yield chunk
        except httpx.TimeoutException as exc:
            raise exceptions.SlowRetrievalError(f"{url}: stalled") from exc
        except httpx.HTTPError as exc:
            raise exceptions.DownloadError(f"{url}: {exc}") from exc
        finally:
            response.close()
