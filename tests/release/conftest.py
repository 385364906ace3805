from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.release.builds import payload_key
from wellcar.payload.signing import load_signing_key
from wellcar.release.create import ReleaseInputs
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TrustRepository


@dataclass
class Workspace:
    base: Path
    tree: Path
    keys: Path
    payload_private: Path
    payload_public: Path

    def inputs(self, changelog: Path | None = None, board: str = "amd64-usr") -> ReleaseInputs:
        return ReleaseInputs(
            payload_keys=[load_signing_key(self.payload_private)],
            tuf_keys=Keyring.load([self.keys]),
            changelog=changelog,
            board=board,
        )


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    tree, keys = tmp_path / "tree", tmp_path / "keys"
    TrustRepository.initialize(tree, keys)
    private, public = payload_key(tmp_path / "payload-keys")
    return Workspace(tmp_path, tree, keys, private, public)
