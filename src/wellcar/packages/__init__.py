"""Wellcar's package set: Debian source packages rebuilt with Wellcar's patches, the signed
apt repository they are published in, and the reports (verify, SBOM, status) that show
what an image is built from. See docs/packages.md."""
