"""The ``journeys`` command line."""

from journeys_cli.main import cli, main

__all__ = ["cli", "main"]
