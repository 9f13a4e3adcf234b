"""`sagan evaluate`: placeholder while issue #6 is built (replaced by the real command)."""

from __future__ import annotations

from sagan_cli.errors import SaganError


def evaluate() -> None:
    """FID / IS / KID / precision-recall (being built, issue #6)."""
    raise SaganError("evaluate is not implemented yet")
