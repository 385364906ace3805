"""Ids in batches small enough for one `IN (...)` on every backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BATCH_SIZE = 500


def in_batches(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), BATCH_SIZE):
        yield ids[i : i + BATCH_SIZE]
