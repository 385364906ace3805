"""python-tuf's download interface over httpx (Debian's python3-httpx on the node).

python-tuf caps every download at the file's maximum length (metadata) or its signed
length (targets) and stops reading beyond it; the reads themselves follow the node's
rules (wellcar.netfetch): no transparent decompression (a gzip bomb would be decoded before
python-tuf's cap saw a byte), raw bytes only, and a wall-clock deadline per file that a
dripping server cannot stretch.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from tuf.api import exceptions
from tuf.ngclient import FetcherInterface

from wellcar.netfetch import (
    IDENTITY,
    Deadline,
    FetchDeadlineError,
    FetchEncodedError,
    FetchTooLargeError,
    raw_chunks,
)

METADATA_DEADLINE_SECONDS = 120.0  # one metadata file; a target passes its own


class HttpxFetcher(FetcherInterface):
    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        timeout: float = 30.0,
        deadline_seconds: float = METADATA_DEADLINE_SECONDS,
        user_agent: str = "wellcar-trust",
    ) -> None:
        # No keep-alive: each file gets a fresh connection its deadline can watch.
        self._client = client or httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": user_agent, **IDENTITY},
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._deadline_seconds = deadline_seconds

    def close(self) -> None:
        self._client.close()

    def _fetch(self, url: str) -> Iterator[bytes]:
        # The request is made here, not lazily, so HTTP errors surface from fetch()
        # (which python-tuf turns into DownloadError) rather than mid-iteration.
        deadline = Deadline(self._deadline_seconds, url)
        deadline.start()
        try:
            request = self._client.build_request(
                "GET", url, headers=IDENTITY, extensions=deadline.extensions
            )
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            deadline.cancel()
            raise _download_error(url, exc, deadline) from exc
        if response.status_code >= 400:
            response.close()
            deadline.cancel()
            raise exceptions.DownloadHTTPError(
                f"{url}: HTTP {response.status_code}", response.status_code
            )
        return self._chunks(url, response, deadline)

    def _chunks(self, url: str, response: httpx.Response, deadline: Deadline) -> Iterator[bytes]:
        try:
            yield from raw_chunks(response, deadline, None)
        except FetchDeadlineError as exc:
            raise exceptions.SlowRetrievalError(str(exc)) from exc
        except FetchEncodedError as exc:
            raise exceptions.DownloadError(f"{url}: {exc}") from exc
        except FetchTooLargeError as exc:
            raise exceptions.DownloadLengthMismatchError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise _download_error(url, exc, deadline) from exc
        finally:
            deadline.cancel()
            response.close()


def _download_error(url: str, exc: httpx.HTTPError, deadline: Deadline) -> exceptions.DownloadError:
    if deadline.expired:  # the timer broke the connection
        return exceptions.SlowRetrievalError(str(deadline.error()))
    if isinstance(exc, httpx.TimeoutException):
        return exceptions.SlowRetrievalError(f"{url}: no data in time")
    return exceptions.DownloadError(f"cannot fetch {url}: {exc}")
