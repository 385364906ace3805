"""Putting an image on a machine: `wellcar install` (flatcar-install's flags), verified.

See docs/install.md. ``installer`` runs the steps; ``release_source`` / ``local_image``
say what the image must be (TUF targets, signed DIGESTS), ``tree_access`` reads the tree,
``image_stream`` hashes and decompresses, ``image_geometry`` reads the image's GPT,
``target`` / ``smallest_disk`` choose and check the disk, ``disk_writer`` writes it with
the partition tables last, ``oem_partition`` places the config, ``gpt_fixup`` moves the
backup GPT. Runs on the node's python3 (stdlib, httpx, zstd/gzip tools, vendored tuf).
"""
