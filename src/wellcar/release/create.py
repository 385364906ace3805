"""Cut a release from a build directory, or promote one to the next channel.

Everything that can fail is checked before the tree is touched (channel, version,
artifacts, keys, root expiry); then the version directory is assembled under a hidden
name and renamed into place, its files are signed into the TUF targets, and only after
that are ``current`` and the feeds moved. If signing fails the directory is removed
again, so a failed release leaves the tree as it was.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from securesystemslib.signer import SSlibKey

from wellcar.image.version import OsVersion
from wellcar.payload.signing import SigningKey
from wellcar.release.boards import DEFAULT_BOARD as DEFAULT_BOARD  # callers import it here
from wellcar.release.boards import check_board
from wellcar.release.build_dir import REQUIRED, BuildDir, parse_packages, sha256_file
from wellcar.release.channels import check_build_version, check_channel, promotion_version
from wellcar.release.digests import DIGESTS, SIGNATURE, ReleaseIdentity, write_signed_digests
from wellcar.release.errors import PromotionError, ReleaseError, VersionExistsError
from wellcar.release.image_artifacts import artifact_for_build_name, publish_artifact
from wellcar.release.notes import FRAGMENT_SECTIONS, major_software, read_fragments, render_notes
from wellcar.release.site import write_release_page
from wellcar.release.streams import write_streams
from wellcar.release.tree import NOTES, RECORD, ArtifactInfo, ReleaseRecord, ReleaseTree
from wellcar.trust.errors import TrustError
from wellcar.trust.keys import Keyring
from wellcar.trust.repository import TargetEntry, TrustRepository


@dataclass(frozen=True)
class ReleaseInputs:
    """What signs a release: the payload key for DIGESTS, the TUF keys for targets."""

    payload_keys: list[SigningKey]
    tuf_keys: Keyring
    changelog: Path | None = None
    board: str = DEFAULT_BOARD
    # A delta update.payload applies only on top of one exact /usr: refused unless a
    # caller knows every node runs that one (tests); `release create` never sets it.
    allow_delta_payload: bool = False


@dataclass(frozen=True)
class ReleaseOutcome:
    record: ReleaseRecord
    directory: Path
    published_metadata: tuple[str, ...]


def _release_date(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def _check_new(tree: ReleaseTree, version: OsVersion, channel: str, board: str) -> None:
    for record in tree.records():
        if record.version == str(version) and (record.board == board or record.channel != channel):
            raise VersionExistsError(
                f"version {version} already exists ({record.channel}/{record.board}); versions "
                "are unique: build the next PATCH (`wellcar release version`)"
            )
    latest = tree.latest(channel, board)
    if latest is not None and latest.os_version >= version:
        raise PromotionError(
            f"{channel}/{board} already has {latest.version}; {version} would go backwards "
            "(nodes never downgrade); nothing was published"
        )


def check_changelog(changelog: Path | None) -> None:
    """A --changelog that is not a changelog directory would silently add no notes."""
    if changelog is None:
        return
    sections = [name for name, _ in FRAGMENT_SECTIONS]
    if not changelog.is_dir():
        raise ReleaseError(
            f"--changelog {changelog}: no such directory; give the directory holding "
            f"{'/, '.join(sections)}/ (or leave --changelog out)"
        )
    if not any((changelog / name).is_dir() for name in sections):
        raise ReleaseError(
            f"--changelog {changelog} has none of {'/, '.join(sections)}/: give the "
            "changelog directory itself"
        )


def _check_payload_keys(inputs: ReleaseInputs, repo: TrustRepository) -> None:
    """DIGESTS is signed with the payload key, never a TUF key: people check DIGESTS with
    the payload public key, and a TUF (offline targets) key used as a second, online
    signing key would lose what keeping it offline buys."""
    if not inputs.payload_keys:
        raise ReleaseError(
            "no signing key for DIGESTS: pass --signing-key with the payload key "
            "(`wellcar keys generate`, the key `wellcar build` signs update.payload with)"
        )
    root = repo.root().signed
    for key in inputs.payload_keys:
        try:
            keyid = SSlibKey.from_crypto(key.public_key).keyid
        except (ValueError, TypeError):
            continue  # not a key type TUF uses here (RSA): cannot be a TUF key
        roles = [r for r in ("root", "targets", "snapshot", "timestamp")
                 if keyid in root.roles[r].keyids]  # fmt: skip
        if roles:
            raise ReleaseError(
                f"--signing-key {key.source} is the TUF {' and '.join(roles)} key; DIGESTS is "
                "signed with the payload key (`wellcar keys generate`), pass that instead"
            )


def _check_tuf_keys(inputs: ReleaseInputs, repo: TrustRepository) -> None:
    """`release create` signs targets, snapshot and timestamp in one go; it cannot stage
    targets for offline signing, so say what works instead of the offline flow."""
    root = repo.root().signed
    short = []
    for role in ("targets", "snapshot", "timestamp"):
        spec = root.roles[role]
        if len(inputs.tuf_keys.for_keyids(spec.keyids)) < spec.threshold:
            short.append(f"{role} ({spec.threshold} of {len(spec.keyids)} keys)")
    if short:
        raise ReleaseError(
            f"the TUF keys given cannot sign {', '.join(short)}: `release create` signs "
            "targets, snapshot and timestamp itself, so pass --keys with those private keys "
            "(files or the directory `wellcar trust init` wrote, e.g. KEYS/targets-1.key); "
            "where the targets key is kept offline, run `release create` on that machine"
        )


def _release(
    tree_root: Path,
    build: BuildDir,
    version: OsVersion,
    channel: str,
    inputs: ReleaseInputs,
    *,
    promoted_from: str | None,
    now: datetime,
) -> ReleaseOutcome:
    check_channel(channel)
    check_board(inputs.board)
    check_changelog(inputs.changelog)
    tree = ReleaseTree(tree_root)
    _check_new(tree, version, channel, inputs.board)
    try:
        repo = TrustRepository(tree_root)
        _check_payload_keys(inputs, repo)
        repo.check_root_fresh(now)
        _check_tuf_keys(inputs, repo)
        repo.check_ready(inputs.tuf_keys, now)
    except TrustError as exc:
        raise ReleaseError(str(exc)) from None
    previous = tree.latest(channel, inputs.board)
    old_packages: dict[str, str] = {}
    seen: set[str] = set()
    if previous is not None:
        old_packages = parse_packages(
            (tree.version_dir(previous) / "packages.txt").read_text(encoding="utf-8")
        )
        seen = set(previous.changelog_seen)
    fragments = read_fragments(inputs.changelog)
    new_fragments = [f for f in fragments if f.key not in seen]

    relative = f"{channel}/{inputs.board}/{version}"
    final = tree_root / relative
    staging = final.with_name(f".{version}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        published: dict[str, str] = {}  # tree name -> sha256
        for name, digest in build.artifacts.items():
            if name in REQUIRED:
                shutil.copyfile(build.path / name, staging / name)
                published[name] = digest
                continue
            written = publish_artifact(artifact_for_build_name(name), build.path / name, staging)
            same = written.name == name
            published[written.name] = digest if same else sha256_file(written)
        names = sorted(published)
        notes = render_notes(
            version=str(version),
            channel=channel,
            previous=(previous.channel, previous.version) if previous else None,
            old_packages=old_packages,
            new_packages=build.packages,
            fragments=new_fragments,
        )
        (staging / NOTES).write_text(notes, encoding="utf-8")
        record = ReleaseRecord(
            version=str(version),
            channel=channel,
            board=inputs.board,
            release_date=_release_date(now),
            previous=f"{previous.channel} {previous.version}" if previous else None,
            promoted_from=promoted_from,
            artifacts={n: ArtifactInfo((staging / n).stat().st_size, published[n]) for n in names},
            major_software=major_software(build.packages),
            changelog_seen=sorted(seen | {f.key for f in fragments}),
        )
        (staging / RECORD).write_text(record.to_json(), encoding="utf-8")
        # Last: DIGESTS lists every file of the directory, named as this release.
        identity = ReleaseIdentity(str(version), inputs.board, channel)
        write_signed_digests(staging, identity, inputs.payload_keys)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    custom = {"version": str(version), "channel": channel, "board": inputs.board}
    signed_files = [*names, DIGESTS, SIGNATURE, NOTES]
    entries = [TargetEntry(f"{relative}/{n}", final / n, custom) for n in signed_files]
    try:
        repo.stage_targets(entries, now=now)
        result = repo.publish(inputs.tuf_keys, now=now)
    except BaseException as exc:
        repo.discard_staged("targets")
        shutil.rmtree(final, ignore_errors=True)
        if isinstance(exc, TrustError):
            raise ReleaseError(f"{exc}; the release was not made") from None
        raise
    tree.set_current(record)
    tree.write_feeds()
    write_streams(tree)
    write_release_page(tree, now)
    return ReleaseOutcome(record, final, result.published)


def create_release(
    tree_root: Path,
    build_dir: Path,
    channel: str,
    inputs: ReleaseInputs,
    now: datetime | None = None,
) -> ReleaseOutcome:
    """Release the build in ``build_dir`` (its version.txt names the version) to channel."""
    check_channel(channel)
    check_board(inputs.board)
    check_changelog(inputs.changelog)
    build = BuildDir.read(build_dir, allow_delta=inputs.allow_delta_payload)
    check_build_version(build.version, channel)
    return _release(
        tree_root, build, build.version, channel, inputs, promoted_from=None,
        now=now or datetime.now(UTC),
    )  # fmt: skip


def promotion_target(
    tree_root: Path, version: str, to_channel: str, board: str, minor: int | None = None
) -> tuple[ReleaseRecord, OsVersion]:
    """The source release and the version its promotion to ``to_channel`` gets."""
    check_channel(to_channel)
    check_board(board)
    tree = ReleaseTree(tree_root)
    source = tree.find(version, board)
    target = promotion_version(
        source.os_version, source.channel, to_channel, tree.versions(), minor
    )
    latest = tree.latest(to_channel, board)
    if latest is not None and latest.os_version >= target:
        raise PromotionError(
            f"{to_channel}/{board} already has {latest.version}, newer than {target} (from "
            f"{version}): the promotion would go backwards; nothing was published"
        )
    return source, target


def promote_release(
    tree_root: Path,
    version: str,
    to_channel: str,
    build_dir: Path,
    inputs: ReleaseInputs,
    *,
    minor: int | None = None,
    now: datetime | None = None,
) -> ReleaseOutcome:
    """Release the rebuild of ``version`` (same inputs, new version baked in) to the
    next channel. The rebuild must carry the promotion's version and exactly the same
    packages as the source release."""
    source, target = promotion_target(tree_root, version, to_channel, inputs.board, minor)
    build = BuildDir.read(build_dir, allow_delta=inputs.allow_delta_payload)
    if build.version != target:
        raise PromotionError(
            f"the promotion of {version} to {to_channel} is version {target} but {build_dir} "
            f"is {build.version}: rebuild with `wellcar build --version {target}` and the "
            "same profile"
        )
    tree = ReleaseTree(tree_root)
    source_packages = parse_packages(
        (tree.version_dir(source) / "packages.txt").read_text(encoding="utf-8")
    )
    if build.packages != source_packages:
        changed = sorted(
            n
            for n in set(build.packages) | set(source_packages)
            if build.packages.get(n) != source_packages.get(n)
        )
        raise PromotionError(
            f"{build_dir} was not built from the same inputs as {version}: packages differ "
            f"({', '.join(changed[:5])}{'…' if len(changed) > 5 else ''}); rebuild from the "
            "same package snapshot"
        )
    return _release(
        tree_root, build, target, to_channel, inputs,
        promoted_from=f"{source.channel} {source.version}", now=now or datetime.now(UTC),
    )  # fmt: skip
