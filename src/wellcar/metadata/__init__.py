"""The node's metadata agent (afterburn's job), standard library only.

On a platform image the kernel command line names the platform (``platform_id``); the
agent asks that platform's metadata service (``providers``) for the hostname, the ssh
keys of ``core`` and the attributes, and writes them where Flatcar's afterburn does
(``/run/metadata/flatcar``, ``COREOS_<PLATFORM>_...`` keys). Ignition's platform config
source reads the user data through the same providers. See docs/platforms.md.
"""
