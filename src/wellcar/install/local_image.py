"""``-f IMAGE_FILE``: a local image file (zstd, gzip or raw), installed without network.

flatcar-install's ``-f`` installs a local file unverified; so does this one, unless the
file sits in a copy of its version directory: with the signed ``DIGESTS`` and
``DIGESTS.sig`` beside it (as the release tree has them, and as the live medium carries
them for offline installs), the file must be listed there, signed by a trusted payload
key, and match.
"""

from __future__ import annotations

from pathlib import Path

from wellcar.install.errors import SourceError, VerificationError
from wellcar.install.image_stream import ExpectedImage

UNVERIFIED = "nothing (an unverified local file, as flatcar-install -f)"


def expect_local_file(path: Path, trusted_keys: list[Path]) -> tuple[ExpectedImage, str | None]:
    """What the file must be, and the release its DIGESTS names (None: unverified)."""
    from wellcar.release.digests import DIGESTS, SIGNATURE

    if not path.is_file():
        raise SourceError(f"-f {path}: no such file")
    digests, signature = path.parent / DIGESTS, path.parent / SIGNATURE
    if not digests.is_file():
        return ExpectedImage(str(path), path.stat().st_size, {}, UNVERIFIED), None
    from wellcar.payload.errors import PayloadError
    from wellcar.payload.signing import load_trusted_keys
    from wellcar.release.digests import read_signed_digests
    from wellcar.release.errors import ReleaseError

    if not trusted_keys:
        raise VerificationError(
            f"{digests} is beside {path.name} but no payload key is known to check it: pass "
            "--trusted-key (the vendor's payload public key)"
        )
    try:
        keys = load_trusted_keys(trusted_keys)
        signed = read_signed_digests(digests.read_bytes(), signature.read_bytes(), keys, digests)
    except (ReleaseError, PayloadError) as exc:
        raise VerificationError(str(exc)) from None
    except OSError as exc:
        raise VerificationError(f"{exc.filename}: {exc.strerror}") from None
    if path.name not in signed.sha256:
        raise VerificationError(f"{path.name} is not listed in the signed {digests}")
    hashes = {"sha256": signed.sha256[path.name], "sha512": signed.sha512[path.name]}
    expected = ExpectedImage(str(path), path.stat().st_size, hashes, "signed DIGESTS")
    return expected, str(signed.identity) if signed.identity else None
