"""The `sagan` command line: parse, validate, call the core. Nothing heavy at import time."""

from __future__ import annotations

import sys

import typer

from sagan_cli.errors import SaganError
from sagan_cli.prepare_cli import prepare_app

app = typer.Typer(
    name="sagan",
    help="Train, sample, inspect and evaluate Self-Attention GANs (Zhang et al. 2018).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(prepare_app, name="prepare")


def _click():
    try:  # Typer >= 0.2x ships its own copy of Click
        from typer import _click as click
    except ImportError:  # pragma: no cover - older Typer on real Click
        import click
    return click


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error becomes one line on stderr and a non-zero exit."""
    click = _click()
    try:
        rv = app(args=argv, prog_name="sagan", standalone_mode=False)
    except SaganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # bare `sagan`: show help
        print(exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see `{ctx.command_path} --help`)"
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
