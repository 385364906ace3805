"""`python -m wellcar`."""

from wellcar.cli.main import main

main()
