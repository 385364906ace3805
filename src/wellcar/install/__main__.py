"""``python3 -m wellcar.install``: the installer without the full CLI (the node's way)."""

import sys

from wellcar.install.cli import main

sys.exit(main(prog="wellcar install"))
