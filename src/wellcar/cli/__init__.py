"""The `wellcar` command."""
