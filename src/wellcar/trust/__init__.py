"""Signed release metadata (TUF) for the release tree, and its verification on the node.

The repository side (keys, metadata, signing) lives in ``keys``, ``policy``, ``repository``
and ``offline``; the node side in ``client`` (with ``fetcher``), which imports only
python-tuf, securesystemslib, httpx and the standard library, because it runs with
Debian's python3 and vendored pure-Python packages. Nothing is imported here, so
``import wellcar.trust.client`` pulls in no repository-side code.
"""
