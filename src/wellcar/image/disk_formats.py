"""Writing a raw disk image in the format a platform imports, and reading it back.

qemu-img (Debian's qemu-utils) converts; every output is then checked from its own bytes:
``qemu-img info``/``check`` for qcow2 and VMDK, the VHD footer for Azure's fixed VHD, the
tar listing for GCE's ``disk.raw`` archive. A check that fails removes the output.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from wellcar.disk.sizes import MiB

from .errors import ImageContentError
from .platforms import ImageFormat
from .tools import run_tool

STEP = "platform"
VHD_FOOTER = 512
VHD_COOKIE = b"conectix"
VHD_FIXED_TYPE = 2
GCE_DISK_NAME = "disk.raw"  # the one name GCE's image import accepts inside the tar
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"


@dataclass(frozen=True)
class ConvertedImage:
    path: Path
    image_format: ImageFormat
    virtual_size: int  # the disk size the platform sees
    extra: tuple[Path, ...] = ()  # e.g. the OVF descriptor next to a VMDK


def _qemu_img_info(path: Path, fmt: str, log: Path | None) -> dict[str, object]:
    text = run_tool(STEP, ["qemu-img", "info", "--output=json", "-f", fmt, str(path)], log=log)
    info: dict[str, object] = json.loads(text[text.index("{") :])
    return info


def _check_info(path: Path, fmt: str, size: int, log: Path | None) -> dict[str, object]:
    info = _qemu_img_info(path, fmt, log)
    if info.get("format") != fmt or info.get("virtual-size") != size:
        raise ImageContentError(
            STEP, f"{path.name} reads back as {info.get('format')} of "
            f"{info.get('virtual-size')} bytes, not {fmt} of {size}"
        )  # fmt: skip
    return info


def round_up_mib(raw: Path) -> int:
    """Extend ``raw`` (sparse) to a whole number of MiB; its new size."""
    size = raw.stat().st_size
    aligned = -(-size // MiB) * MiB
    if aligned != size:
        os.truncate(raw, aligned)
    return aligned


def check_vhd_footer(path: Path, size: int) -> None:
    """A fixed VHD is the raw disk followed by a 512-byte footer: cookie, type 2 (fixed),
    current size, and a one's-complement checksum of the footer."""
    if path.stat().st_size != size + VHD_FOOTER:
        raise ImageContentError(STEP, f"{path.name} is not {size} bytes plus a VHD footer")
    with path.open("rb") as vhd:
        vhd.seek(size)
        footer = vhd.read(VHD_FOOTER)
    (current,) = struct.unpack_from(">Q", footer, 48)
    (disk_type, checksum) = struct.unpack_from(">II", footer, 60)
    summed = sum(footer[:64]) + sum(footer[68:])
    problems = []
    if footer[:8] != VHD_COOKIE:
        problems.append("no 'conectix' cookie")
    if disk_type != VHD_FIXED_TYPE:
        problems.append(f"disk type {disk_type}, not 2 (fixed)")
    if current != size or size % MiB:
        problems.append(f"size {current}, not {size} (a multiple of 1 MiB)")
    if checksum != (~summed & 0xFFFFFFFF):
        problems.append("bad footer checksum")
    if problems:
        raise ImageContentError(STEP, f"{path.name}: {'; '.join(problems)}")


def render_ovf(vmdk: Path, capacity: int, name: str) -> str:
    """A minimal OVF 1.0 envelope: one stream-optimized disk on one SCSI controller."""
    size = vmdk.stat().st_size
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="{OVF_NS}" xmlns:ovf="{OVF_NS}"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{vmdk.name}" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity}"
      ovf:capacityAllocationUnits="byte"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="101">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:ElementName>2 virtual CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>2048MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>2048</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>disk0</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def check_ovf(ovf: Path, vmdk: Path, capacity: int) -> None:
    try:
        root = ET.parse(ovf).getroot()
    except ET.ParseError as exc:
        raise ImageContentError(STEP, f"{ovf.name} is not XML: {exc}") from None
    attr = f"{{{OVF_NS}}}"
    file_ref = root.find(f"{attr}References/{attr}File")
    disk = root.find(f"{attr}DiskSection/{attr}Disk")
    if (
        file_ref is None
        or disk is None
        or file_ref.get(f"{attr}href") != vmdk.name
        or file_ref.get(f"{attr}size") != str(vmdk.stat().st_size)
        or disk.get(f"{attr}capacity") != str(capacity)
    ):
        raise ImageContentError(STEP, f"{ovf.name} does not describe {vmdk.name}")


def check_gce_tar(archive: Path, size: int, log: Path | None) -> None:
    listing = run_tool(STEP, ["tar", "-tvzf", str(archive)], log=log).split("\n")
    entries = [line.split() for line in listing if line.strip()]
    if len(entries) != 1 or entries[0][-1] != GCE_DISK_NAME or entries[0][2] != str(size):
        raise ImageContentError(
            STEP, f"{archive.name} must hold only {GCE_DISK_NAME} of {size} bytes: {listing}"
        )


def convert(raw: Path, target: Path, image_format: ImageFormat, *, name: str,
            log: Path | None = None, ovf: Path | None = None) -> ConvertedImage:  # fmt: skip
    """Write ``raw`` as ``target`` (and, for VMDK, its descriptor as ``ovf``) and check
    it; ``raw`` is consumed (moved or deleted) so that only checked outputs are left."""
    target.unlink(missing_ok=True)
    try:
        result = _convert(raw, target, image_format, name, log, ovf)
    except BaseException:
        target.unlink(missing_ok=True)
        if ovf is not None:
            ovf.unlink(missing_ok=True)
        raise
    finally:
        raw.unlink(missing_ok=True)
    return result


def _convert(raw: Path, target: Path, image_format: ImageFormat, name: str,
             log: Path | None, ovf: Path | None) -> ConvertedImage:  # fmt: skip
    size = raw.stat().st_size
    qemu_img = ["qemu-img", "convert", "-f", "raw"]
    if image_format is ImageFormat.RAW:
        shutil.move(raw, target)
        _check_info(target, "raw", size, log)
        return ConvertedImage(target, image_format, size)
    if image_format is ImageFormat.QCOW2:
        run_tool(STEP, [*qemu_img, "-O", "qcow2", "-o", "compat=1.1", str(raw), str(target)],
                 log=log)  # fmt: skip
        _check_info(target, "qcow2", size, log)
        run_tool(STEP, ["qemu-img", "check", "-f", "qcow2", str(target)], log=log)
        return ConvertedImage(target, image_format, size)
    if image_format is ImageFormat.VHD_FIXED:
        size = round_up_mib(raw)
        # force_size: the footer states the raw size itself, not a CHS-rounded one.
        run_tool(STEP, [*qemu_img, "-O", "vpc", "-o", "subformat=fixed,force_size=on",
                        str(raw), str(target)], log=log)  # fmt: skip
        check_vhd_footer(target, size)
        _check_info(target, "vpc", size, log)
        return ConvertedImage(target, image_format, size)
    if image_format is ImageFormat.VMDK_STREAM:
        run_tool(STEP, [*qemu_img, "-O", "vmdk", "-o", "subformat=streamOptimized",
                        str(raw), str(target)], log=log)  # fmt: skip
        info = _check_info(target, "vmdk", size, log)
        specific = info.get("format-specific")
        data = specific.get("data") if isinstance(specific, dict) else None
        if not isinstance(data, dict) or data.get("create-type") != "streamOptimized":
            raise ImageContentError(STEP, f"{target.name} is not a stream-optimized VMDK")
        run_tool(STEP, ["qemu-img", "check", "-f", "vmdk", str(target)], log=log)
        ovf = ovf or target.with_suffix(".ovf")
        ovf.write_text(render_ovf(target, size, name), encoding="utf-8")
        check_ovf(ovf, target, size)
        return ConvertedImage(target, image_format, size, (ovf,))
    # GCE: the archive member must be called disk.raw; -S keeps the holes, oldgnu is
    # the tar format GCE documents.
    staging = raw.with_name(GCE_DISK_NAME)
    raw.rename(staging)
    try:
        run_tool(STEP, ["tar", "--format=oldgnu", "-Sczf", str(target), "-C",
                        str(staging.parent), GCE_DISK_NAME], log=log)  # fmt: skip
    finally:
        staging.unlink(missing_ok=True)
    check_gce_tar(target, size, log)
    return ConvertedImage(target, image_format, size)
