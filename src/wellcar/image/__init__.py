"""Building Wellcar images: rootfs, /usr erofs + dm-verity, disk image, update payload.

- ``settings``: the build settings table, brand profiles (TOML), CLI options and docs;
- ``rootfs`` / ``branding``: the Debian tree, Wellcar's code and the brand's files;
- ``usr_image``: reproducible erofs + verity; ``esp`` / ``filesystems`` / ``disk_image``:
  the partitions and the GPT disk; ``build``: the steps in order.

See docs/image.md.
"""

from __future__ import annotations

from .build import STEPS, BuildResult, build, render_version_txt
from .errors import (
    ImageBuildError,
    ImageContentError,
    MissingToolError,
    SettingsError,
    ToolError,
)
from .settings import SETTINGS, BrandProfile, BuildSettings, Setting, resolve_settings
from .usr_image import UsrImage, build_usr_image
from .version import OsVersion, parse_os_version, version_for

__all__ = [
    "SETTINGS",
    "STEPS",
    "BrandProfile",
    "BuildResult",
    "BuildSettings",
    "ImageBuildError",
    "ImageContentError",
    "MissingToolError",
    "OsVersion",
    "Setting",
    "SettingsError",
    "ToolError",
    "UsrImage",
    "build",
    "build_usr_image",
    "parse_os_version",
    "render_version_txt",
    "resolve_settings",
    "version_for",
]
