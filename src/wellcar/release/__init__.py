"""Releases: versions and channels, the release tree, promotion, publishing.

See docs/release.md. ``create`` and ``promote`` write the tree (artifacts, DIGESTS and
their signature, notes, feeds, ``current`` pointers) and sign it into the tree's TUF
repository (wellcar.trust.repository); ``publish`` tells the update server about it.
"""
