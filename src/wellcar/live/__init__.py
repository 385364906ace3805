"""Live media: the hybrid live ISO and the PXE artifacts, and their customization.

- ``cmdline``: the live kernel command line (one function);
- ``boot_scripts``: what the image's initrd carries for a live boot (/usr in RAM);
- ``cpio``: newc archives, the unit of everything added to an initrd;
- ``artifacts``: PXE files and the ISO from a build's outputs;
- ``iso``: xorriso and the ESP inside the ISO; ``customize``: ``iso``/``pxe customize``.

Nothing is imported here: ``wellcar.image`` imports ``boot_scripts`` while it loads.
See docs/live.md.
"""
