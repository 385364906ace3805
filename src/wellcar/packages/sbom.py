"""The release's SBOM: CycloneDX 1.6 JSON (cyclonedx-python-lib), one component per
package the image holds.

Each component has its name, version, a ``pkg:deb`` purl (namespace ``wellcar`` for the
packages we built, ``debian`` for Debian's binaries), its licences (from the package's
copyright file; none when that file is not machine-readable) and Wellcar properties:
``wellcar:origin`` (built by Wellcar / Debian binary, verified or not), ``wellcar:source``
and ``wellcar:source-version``, and for our builds ``wellcar:patches`` and
``wellcar:buildinfo`` (the .buildinfo's path in the repository).
"""

from __future__ import annotations

from pathlib import Path

from cyclonedx.contrib.license.exceptions import InvalidSpdxLicenseException
from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import License
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from .image_report import ImageStatus, Origin
from .licences import LicenceCache
from .repository import Repository

ARCH = "amd64"


def _licences(factory: LicenseFactory, names: list[str]) -> list[License]:
    """One name may be an SPDX expression; CycloneDX allows an expression only alone, so
    several names are each an SPDX id where they are one, else a plain name."""
    if len(names) == 1:
        return [factory.make_from_string(names[0])]
    made: list[License] = []
    for name in names:
        try:
            made.append(factory.make_with_id(name))
        except InvalidSpdxLicenseException:
            made.append(factory.make_with_name(name))
    return made


def make_sbom(
    status: ImageStatus,
    name: str,
    version: str,
    repository: Repository | None,
    licences: LicenceCache,
    deb_dirs: list[Path],
) -> str:
    """The CycloneDX JSON text for an image ``name`` ``version``."""
    factory = LicenseFactory()
    builds = repository.builds() if repository is not None else {}
    bom = Bom()
    root = bom.metadata.component = Component(
        name=name, version=version, type=ComponentType.OPERATING_SYSTEM
    )
    components = []
    for package in status.packages:
        ours = package.origin is Origin.OURS
        properties = [
            Property(name="wellcar:origin", value=str(package.origin)),
            Property(name="wellcar:source", value=package.source),
            Property(name="wellcar:source-version", value=package.source_version),
        ]
        build = builds.get(package.source) if ours else None
        if build is not None:
            patches = build.get("patches", [])
            buildinfo = build.get("buildinfo", [])
            if isinstance(patches, list):
                properties.append(Property(name="wellcar:patches", value=" ".join(patches)))
            if isinstance(buildinfo, list):
                properties.append(Property(name="wellcar:buildinfo", value=" ".join(buildinfo)))
        names = licences.licences(deb_dirs, package.name, package.version) or []
        components.append(
            Component(
                name=package.name,
                version=package.version,
                type=ComponentType.LIBRARY,
                bom_ref=f"{package.name}@{package.version}",
                purl=PackageURL(
                    type="deb",
                    namespace="wellcar" if ours else "debian",
                    name=package.name,
                    version=package.version,
                    qualifiers={"arch": ARCH},
                ),
                licenses=_licences(factory, names),
                properties=properties,
            )
        )
    for component in components:
        bom.components.add(component)
    # The image holds every package directly: a flat, complete dependency graph.
    bom.register_dependency(root, components)
    licences.save()
    return JsonV1Dot6(bom).output_as_string(indent=2)
