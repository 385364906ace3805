"""The OpenPGP key that signs the apt repository, held in a GnuPG home directory.

A repository is signed with the vendor's key: ``--key-dir`` names a GnuPG home holding
its secret key. Without one, a development key is made once (``gpg --quick-gen-key``,
Ed25519, no passphrase) in ``<dev-keys-dir>/apt-repository``, beside the image's other
development keys (wellcar.image.dev_keys), and the CLI says it is for development only.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import RepositoryError

DEV_KEY_SUBDIR = "apt-repository"
DEV_KEY_UID = "Wellcar development archive key <packages@wellcar.dev>"


@dataclass(frozen=True)
class SigningKey:
    home: Path  # GNUPGHOME
    fingerprint: str

    def gpg(self, *args: str, stdin: bytes | None = None) -> bytes:
        home = str(self.home)
        return run_gpg(home, ["--local-user", self.fingerprint, *args], stdin)


def run_gpg(home: str, args: list[str], stdin: bytes | None = None) -> bytes:
    argv = ["gpg", "--homedir", home, "--batch", "--yes", "--no-tty", "--quiet", *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise RepositoryError(f"gpg {args[0]}: {(message or ['failed'])[-1]}")
    return result.stdout


def find_signing_key(home: Path) -> SigningKey:
    """The first secret signing key in ``home``; a RepositoryError if there is none."""
    if not home.is_dir():
        raise RepositoryError(f"the repository key directory {home} does not exist")
    listing = run_gpg(str(home), ["--with-colons", "--list-secret-keys"]).decode()
    wanted = False  # the fpr line that follows a "sec" line is that key's
    for line in listing.splitlines():
        parts = line.split(":")
        if parts[0] in ("sec", "ssb"):
            wanted = parts[0] == "sec" and "s" in parts[11].lower()
        elif parts[0] == "fpr" and wanted:
            return SigningKey(home, parts[9])
    raise RepositoryError(f"no secret signing key in {home}: the repository cannot be signed")


def dev_key_home(dev_keys_dir: Path) -> Path:
    return dev_keys_dir / DEV_KEY_SUBDIR


def ensure_dev_key(dev_keys_dir: Path) -> SigningKey:
    home = dev_key_home(dev_keys_dir)
    if home.is_dir():
        try:
            return find_signing_key(home)
        except RepositoryError:
            pass
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    run_gpg(
        str(home), ["--passphrase", "", "--quick-gen-key", DEV_KEY_UID, "ed25519", "sign", "never"]
    )
    return find_signing_key(home)
