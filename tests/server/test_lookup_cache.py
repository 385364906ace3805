"""The per-process id cache: found values expire, misses are never kept."""

from __future__ import annotations

from wellcar.server.lookup_cache import TtlCache


def test_expiry_and_misses() -> None:
    now = [0.0]
    cache: TtlCache[str, str | None] = TtlCache(5.0, clock=lambda: now[0])
    loads: list[str] = []

    def load(value: str | None) -> str | None:
        loads.append(str(value))
        return value

    assert cache.get_or_load("a", lambda: load("1")) == "1"
    assert cache.get_or_load("a", lambda: load("2")) == "1"  # cached
    now[0] = 6.0
    assert cache.get_or_load("a", lambda: load("3")) == "3"  # expired, reloaded
    assert cache.get_or_load("b", lambda: load(None)) is None
    assert cache.get_or_load("b", lambda: load("4")) == "4"  # the miss was not kept
    assert loads == ["1", "3", "None", "4"]


def test_bounded() -> None:
    cache: TtlCache[int, int] = TtlCache(60.0, max_entries=10)
    for i in range(25):
        cache.get_or_load(i, lambda i=i: i)  # type: ignore[misc]
    assert len(cache._data) <= 10
