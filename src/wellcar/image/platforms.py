"""The platforms Wellcar images are made for, as data: one row per platform.

Every platform image is the same build's ``disk.img`` with two differences, both chosen
here: the OEM partition's content (``oem-release`` naming the platform, as Flatcar's, and
the platform's kernel arguments) and the boot entry's command line (platform id and
consoles). Then it is written in the format the platform imports (wellcar.image.disk_formats).

The kernel command line of a platform is the slot's base command line (owned by the boot
contract) with :func:`platform_options` applied: the platform's ``console=`` words
replace the base's, and its platform ids follow. The same words are kept on the OEM
partition (``OEM_KERNEL_ARGS``) for tools that write a boot entry from scratch; the agent
carries the running command line over to an update's entry by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from wellcar.metadata.platform_id import PlatformId, platform_by_ignition_id

from .errors import ImageBuildError

OEM_RELEASE = "oem-release"  # read by the agent for Omaha's oem/oemversion
OEM_KERNEL_ARGS = "kernel-args"  # one line: what this platform adds to every boot entry


class ImageFormat(StrEnum):
    """What a platform imports; the value is the file name extension."""

    RAW = "raw"
    QCOW2 = "qcow2"
    VHD_FIXED = "vhd"  # Azure: fixed VHD, virtual size a multiple of 1 MiB
    VMDK_STREAM = "vmdk"  # VMware: stream-optimized VMDK with an OVF descriptor
    GCE_TAR = "tar.gz"  # GCE: disk.raw in a gzipped GNU tar

    @property
    def compressible(self) -> bool:
        """Worth compressing when published: raw and fixed VHD are mostly zeros and
        uncompressed /usr; qcow2, stream-optimized VMDK and tar.gz are not."""
        return self in (ImageFormat.RAW, ImageFormat.VHD_FIXED)


@dataclass(frozen=True)
class Platform:
    name: str
    platform_id: PlatformId
    image_format: ImageFormat
    oem_id: str  # oem-release ID (Flatcar's: "ami" on AWS)
    oem_name: str
    # console= values, the serial console last: the last one is /dev/console, where the
    # initrd and systemd write and where platforms capture the boot log.
    consoles: tuple[str, ...]
    extra_kernel_args: tuple[str, ...] = ()
    metadata_provider: str | None = None  # wellcar.metadata provider name, None: none


def _id(name: str) -> PlatformId:
    return platform_by_ignition_id(name)


SERIAL = "ttyS0,115200n8"
# fmt: off
PLATFORMS: tuple[Platform, ...] = (
    Platform("qemu", _id("qemu"), ImageFormat.QCOW2, "qemu", "QEMU", ("ttyS0",)),
    Platform("aws", _id("aws"), ImageFormat.RAW, "ami", "Amazon EC2", ("tty0", SERIAL),
             ("nvme_core.io_timeout=4294967295",), "ec2"),
    Platform("gce", _id("gcp"), ImageFormat.GCE_TAR, "gce", "Google Compute Engine",
             (SERIAL,), metadata_provider="gce"),
    Platform("azure", _id("azure"), ImageFormat.VHD_FIXED, "azure", "Microsoft Azure",
             (SERIAL,), ("earlyprintk=ttyS0,115200", "rootdelay=300"), "azure"),
    Platform("openstack", _id("openstack"), ImageFormat.QCOW2, "openstack", "OpenStack",
             ("tty0", SERIAL), metadata_provider="openstack"),
    Platform("proxmox", _id("proxmoxve"), ImageFormat.QCOW2, "proxmoxve", "Proxmox VE",
             ("tty0", SERIAL)),
    Platform("digitalocean", _id("digitalocean"), ImageFormat.QCOW2, "digitalocean",
             "DigitalOcean", ("tty0", SERIAL), metadata_provider="digitalocean"),
    Platform("hetzner", _id("hetzner"), ImageFormat.RAW, "hetzner", "Hetzner Cloud",
             ("tty0", SERIAL), metadata_provider="hetzner"),
    Platform("vmware", _id("vmware"), ImageFormat.VMDK_STREAM, "vmware", "VMware",
             ("tty0", SERIAL), metadata_provider="vmware"),
    Platform("metal", _id("metal"), ImageFormat.RAW, "metal", "Bare metal", ("tty0", SERIAL)),
)
# fmt: on


class UnknownPlatformError(ImageBuildError):
    def __init__(self, name: str) -> None:
        known = ", ".join(p.name for p in PLATFORMS)
        super().__init__("platform", f"unknown platform {name!r}; known platforms: {known}")


OVF_SUFFIX = ".ovf"


def platform_files(platform: Platform) -> tuple[str, ...]:
    """The files a platform's image is, as named in the build directory: the disk image,
    then (VMware) its OVF descriptor."""
    image = f"platform-{platform.name}.{platform.image_format.value}"
    if platform.image_format is ImageFormat.VMDK_STREAM:
        return image, f"platform-{platform.name}{OVF_SUFFIX}"
    return (image,)


@dataclass(frozen=True)
class PlatformFile:
    """One file of a platform image, as a release publishes it."""

    build_name: str
    compress: bool  # worth compressing when published
    what: str
    platform: str  # Platform.name
    format: str  # the image format's extension ("qcow2"), or "ovf" for the descriptor


def platform_release_files() -> tuple[PlatformFile, ...]:
    """Every platform's files, in table order (release.image_artifacts has one row each)."""
    found = []
    for platform in PLATFORMS:
        image, *descriptor = platform_files(platform)
        fmt = platform.image_format
        found.append(PlatformFile(image, fmt.compressible, f"the {platform.name} image ({fmt})",
                                  platform.name, fmt.value))  # fmt: skip
        found += [PlatformFile(n, False, f"the {platform.name} OVF descriptor", platform.name,
                               OVF_SUFFIX.lstrip(".")) for n in descriptor]  # fmt: skip
    return tuple(found)


def platform_named(name: str) -> Platform:
    for platform in PLATFORMS:
        if platform.name == name:
            return platform
    raise UnknownPlatformError(name)


def platform_kernel_arguments(platform: Platform) -> tuple[str, ...]:
    """The words a platform adds to a slot's command line."""
    consoles = tuple(f"console={c}" for c in platform.consoles)
    return (*platform.platform_id.kernel_arguments(), *platform.extra_kernel_args, *consoles)


def platform_options(base: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    """A slot's command line words (wellcar.disk.boot_entries) with a platform's: its
    ``console=`` words replace the base's, the rest are appended (once)."""
    words = list(base)
    if any(word.startswith("console=") for word in extra):
        words = [word for word in words if not word.startswith("console=")]
    return (*words, *(word for word in extra if word not in words))


def render_oem_release(platform: Platform, version: str) -> str:
    """Flatcar's ``/oem/oem-release``: the OEM content is built with the OS, so its
    version is the OS version."""
    return f'ID={platform.oem_id}\nVERSION_ID={version}\nNAME="{platform.oem_name}"\n'


def oem_files(platform: Platform, version: str) -> dict[str, str]:
    """The OEM partition's files for ``platform`` (name -> text)."""
    return {
        OEM_RELEASE: render_oem_release(platform, version),
        OEM_KERNEL_ARGS: " ".join(platform_kernel_arguments(platform)) + "\n",
    }
