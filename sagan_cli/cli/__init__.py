"""The command line (``sagan``): ``app`` holds the commands, ``main`` is the console script."""

from sagan_cli.cli.app import app, main

__all__ = ["app", "main"]
