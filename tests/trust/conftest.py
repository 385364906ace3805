from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trust.simulator import RepoSim


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RepoSim]:
    simulator = RepoSim(tmp_path)
    try:
        yield simulator
    finally:
        simulator.close()
