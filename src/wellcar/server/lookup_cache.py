"""A small time-bounded cache for lookups that almost never change (app and group ids).

Every server process keeps its own; a change made through another process becomes
visible here within the TTL, which is why only id resolution is cached, never state
that a decision depends on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Caches found values for `ttl_seconds`; a None result (not found) is never cached."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._data: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        now = self._clock()
        hit = self._data.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if value is None:
            return value  # misses are not cached: a new app or group works at once
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.clear()  # crude, but bounded: ids are few in practice
            self._data[key] = (now + self.ttl, value)
        return value
