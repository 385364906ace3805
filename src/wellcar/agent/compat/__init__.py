"""Flatcar's node commands, with their verbs, output shapes and exit codes, over the
Wellcar agent: ``update_engine_client`` and ``locksmithctl`` (one module each). The image
installs them as ``/usr/bin`` launchers (``wellcar.image.rootfs``). Standard library and
the agent's own modules only."""
