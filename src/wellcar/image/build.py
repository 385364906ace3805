"""``wellcar build``: the steps from package list to disk image and update payload.

Order: rootfs (mmdebstrap) → manifest → Wellcar's code and branding → node set-up (units,
initrd that mounts a verity /usr) and extra trees → /etc defaults → /usr erofs + verity →
ROOT tree → disk.img → update payload → version.txt, SHA256SUMS.
Intermediate trees live in ``<output>/.work`` and are removed at the end (the rootfs is
about a GB); ``build.log`` keeps every tool's output.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wellcar.disk import UsrVerity
from wellcar.live.artifacts import LIVE_FILES, LiveInputs, build_live_artifacts
from wellcar.live.errors import LiveError
from wellcar.payload.errors import PayloadError
from wellcar.payload.generate import GenerateOptions, PayloadInputs, generate_payload
from wellcar.payload.signing import SigningKey, load_signing_key

from .branding import apply_branding, capture_etc_defaults
from .disk_image import assemble_disk, stage_root_tree
from .errors import ImageBuildError, ImageContentError
from .etc_defaults import split_first_boot_etc
from .node_setup import install_node_setup, place_first_boot_flag, regenerate_initrd
from .preflight import preflight, remove_outputs
from .rootfs import (
    find_boot_files,
    install_wellcar,
    installed_packages,
    purge_package_manager,
    render_manifest,
    run_mmdebstrap,
)
from .settings import BuildSettings
from .tools import run_tool
from .usr_image import build_usr_image

STEPS: tuple[str, ...] = (
    "rootfs",
    "manifest",
    "install-wellcar",
    "branding",
    "node-setup",
    "usr-image",
    "root-fs",
    "disk",
    "payload",
    "metadata",
    "live",  # only when settings.wants_live_artifacts
)
PAYLOAD_NAME = "update.payload"
# Reported per step: (step name, index from 0, number of steps).
StepCallback = Callable[[str, int, int], None]


@dataclass
class BuildResult:
    output: Path
    root_hash: str
    packages: dict[str, str]
    files: dict[str, int] = field(default_factory=dict)  # name -> size in bytes
    seconds: dict[str, float] = field(default_factory=dict)  # step -> duration


def render_version_txt(settings: BuildSettings, root_hash: str, hash_offset: int) -> str:
    """Flatcar's version.txt keys under the brand's prefix, plus the /usr root hash."""
    p, v = settings.brand.prefix, settings.version
    return (
        f"{p}_BUILD={v.major}\n{p}_BRANCH={v.minor}\n{p}_PATCH={v.patch}\n"
        f'{p}_VERSION={v}\n{p}_VERSION_ID={v}\n{p}_BUILD_ID=""\n'
        f"{p}_SOURCE_DATE_EPOCH={settings.epoch}\n{p}_USR_ROOT_HASH={root_hash}\n"
        f"{p}_USR_HASH_OFFSET={hash_offset}\n"
    )


def copy_extra_trees(rootfs: Path, trees: tuple[Path, ...], log: Path | None) -> None:
    for tree in trees:
        if not tree.is_dir():
            raise ImageContentError("node-setup", f"extra tree {tree} is not a directory")
        run_tool("node-setup", ["cp", "-a", "--no-preserve=ownership", f"{tree}/.",
                                f"{rootfs}/"], log=log)  # fmt: skip


def _sha256(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()


def _build_live(settings: BuildSettings, out: Path, work: Path, log: Path) -> None:
    """The live ISO and PXE files from this build's outputs (docs/live.md)."""
    try:
        build_live_artifacts(
            LiveInputs.from_build_dir(out), out, brand_id=settings.brand.id,
            title=settings.brand.pretty_name, zstd_level=settings.payload_zstd_level,
            work=work, log=log,
        )  # fmt: skip
    except LiveError as exc:
        raise ImageBuildError("live", str(exc)) from exc


def _signing_keys(settings: BuildSettings) -> list[SigningKey]:
    if settings.signing_key is None:
        return []
    try:
        return [load_signing_key(settings.signing_key)]
    except (OSError, PayloadError) as exc:
        raise ImageBuildError("payload", f"cannot load signing key: {exc}") from exc


def build(
    settings: BuildSettings,
    *,
    rootfs: Path | None = None,
    on_step: StepCallback | None = None,
    keep_work: bool = False,
    checked: bool = False,
) -> BuildResult:
    """Run the build into ``settings.output``. With ``rootfs`` (a prepared tree, as the
    tests use) the mmdebstrap step is skipped and that tree is modified in place, and
    the node set-up (units, initrd) only runs when the tree has a kernel's modules.

    Tools, packages and free space are checked before anything long starts. A failed
    build removes the outputs it wrote (build.log stays, ending with the error), so no
    half-written image is left looking finished; SHA256SUMS, written last, marks one
    that is. ``checked``: the caller already ran :func:`preflight`."""
    out = settings.output
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    log.write_text(f"# wellcar build {settings.version}\n", encoding="utf-8")
    remove_outputs(out)  # a previous build's files must not mix with this one's
    run = _BuildRun(settings, out, log, on_step)
    try:
        if not checked:
            preflight(settings, packages=rootfs is None)
        return run.steps(rootfs, keep_work)
    except BaseException as exc:
        remove_outputs(out)
        failure = exc
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            failure = ImageBuildError(run.current, f"{exc.strerror or exc}{where}")
        with log.open("a", encoding="utf-8") as out_log:
            out_log.write(f"## failed: {failure}\n")
        if failure is not exc:
            raise failure from exc
        raise


class _BuildRun:
    """One build's bookkeeping: the current step, its timings and the progress callback."""

    def __init__(
        self, settings: BuildSettings, out: Path, log: Path, on_step: StepCallback | None
    ) -> None:
        self.settings, self.out, self.log, self.on_step = settings, out, log, on_step
        self.current = "preflight"
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def step(self, name: str) -> None:
        now = time.perf_counter()
        if self.current in STEPS:
            self.seconds[self.current] = now - self._started
        self.current, self._started = name, now
        with self.log.open("a", encoding="utf-8") as out_log:
            out_log.write(f"## step {name}\n")
        if self.on_step is not None:
            self.on_step(name, STEPS.index(name), len(STEPS))

    def steps(self, rootfs: Path | None, keep_work: bool) -> BuildResult:
        settings, out, log, step = self.settings, self.out, self.log, self.step
        work = out / ".work"
        keys = _signing_keys(settings)  # fail before the long steps, not after them
        step("rootfs")
        regenerate = rootfs is None or (rootfs / "usr/lib/modules").is_dir()
        if rootfs is None:
            rootfs = work / "rootfs"
            if rootfs.exists():
                shutil.rmtree(rootfs)
            work.mkdir(parents=True, exist_ok=True)
            run_mmdebstrap(settings, rootfs, log)
            purge_package_manager(rootfs, log)
        step("manifest")
        packages = installed_packages(rootfs)
        (out / "packages.txt").write_text(render_manifest(packages), encoding="utf-8")
        step("install-wellcar")
        install_wellcar(rootfs)
        step("branding")
        apply_branding(rootfs, settings)
        step("node-setup")
        if regenerate:
            install_node_setup(rootfs, settings, log)
            regenerate_initrd(rootfs, log)
        copy_extra_trees(rootfs, settings.extra_trees, log)
        if regenerate:  # a node's first-boot /etc (docs/ignition.md): the rest waits in /usr
            split_first_boot_etc(rootfs, settings.brand.id)
        capture_etc_defaults(rootfs, settings.brand.id)
        if regenerate:
            place_first_boot_flag(rootfs)
        kernel_src, initrd_src = find_boot_files(rootfs)
        kernel = out / "vmlinuz"
        shutil.copyfile(kernel_src, kernel)
        initrd: Path | None = None
        if initrd_src is not None:
            initrd = out / "initrd.img"
            shutil.copyfile(initrd_src, initrd)
        step("usr-image")
        usr = build_usr_image(rootfs / "usr", out, epoch=settings.epoch,
                              seed=settings.seed("usr"), log=log)  # fmt: skip
        step("root-fs")
        root_tree = stage_root_tree(rootfs, work / "root-tree", settings.epoch, log)
        step("disk")
        assemble_disk(settings, usr, root_tree, kernel, initrd, out=out / "disk.img",
                      work=work, log=log)  # fmt: skip
        step("payload")
        try:
            generate_payload(
                PayloadInputs(
                    new_usr=usr.image,
                    kernel=kernel,
                    initrd=initrd,
                    usr_verity=UsrVerity(usr.root_hash, usr.data_size),
                ),
                out / PAYLOAD_NAME,
                keys,
                GenerateOptions(zstd_level=settings.payload_zstd_level, try_bsdiff=False),
            )
        except PayloadError as exc:
            raise ImageBuildError("payload", str(exc)) from exc
        step("metadata")
        (out / "version.txt").write_text(render_version_txt(settings, usr.root_hash, usr.data_size),
                                         encoding="utf-8")  # fmt: skip
        if settings.wants_live_artifacts:
            step("live")
            _build_live(settings, out, work / "live", log)
        if not keep_work and work.exists():
            shutil.rmtree(work)
        names = ["disk.img", "usr.img", "vmlinuz", "initrd.img", PAYLOAD_NAME,
                 "packages.txt", "version.txt", *LIVE_FILES]  # fmt: skip
        present = [name for name in names if (out / name).is_file()]
        sums = "".join(f"{_sha256(out / name)}  {name}\n" for name in present)
        (out / "SHA256SUMS").write_text(sums, encoding="utf-8")
        self.seconds["metadata"] = time.perf_counter() - self._started
        return BuildResult(
            output=out,
            root_hash=usr.root_hash,
            packages=packages,
            files={name: (out / name).stat().st_size for name in [*present, "SHA256SUMS"]},
            seconds=self.seconds,
        )
