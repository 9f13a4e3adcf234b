"""The `sagan` application: its commands, in the order help lists them, and the exit handling.

Every command module is thin (parse, validate, call the core) and imports torch only inside its
body, so `sagan --help` and TAB completion stay fast. A new subcommand is one module here plus one
entry in ``COMMANDS``.
"""

from __future__ import annotations

import re
import sys

import typer
import typer.core

from sagan_cli.cli import attn_map, evaluate, export, info, options, plot, prepare, sample, train
from sagan_cli.util.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PEER_LOST, SaganError

def _flags_show_no_type() -> None:
    """Typer's help prints '<bool>' after every on/off flag (``--force <bool>``), which reads as if it took
    a value, while ``--force true`` is an error: flags show no type column (Typer 0.2x's hook for it)."""
    option = getattr(typer.core, "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if original is None or getattr(original, "sagan_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    display_type_rich.sagan_flags = True
    option.display_type_rich = display_type_rich


_flags_show_no_type()


class _InOrder(typer.core.TyperGroup):
    """Help lists the commands in the order of ``COMMANDS`` (Typer puts groups such as prepare last), and a
    command's words are read with the renamed option spellings (``options.RENAMED``) replaced."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: list(COMMANDS).index(n) if n in COMMANDS else len(COMMANDS))

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        return name, command, options.renamed(name, rest, _warn)


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


app = typer.Typer(
    name="sagan",
    cls=_InOrder,
    help="Train, sample, inspect and evaluate Self-Attention GANs (Zhang et al. 2018).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# name -> a command function, or a Typer group of commands (prepare's sources)
COMMANDS = {
    "prepare": prepare.app,
    "train": train.train,
    "sample": sample.sample,
    "attn-map": attn_map.attn_map,
    "evaluate": evaluate.evaluate,
    "plot": plot.plot,
    "info": info.info,
    "export": export.export,
}
def _print_version(value: bool) -> None:
    if value:
        from sagan_cli import __version__

        print(f"sagan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print sagan's version and exit.")) -> None:
    """Options of `sagan` itself (before the command)."""


for _name, _command in COMMANDS.items():
    if isinstance(_command, typer.Typer):
        app.add_typer(_command, name=_name)
    else:
        app.command(_name)(_command)


def _click():
    try:  # Typer >= 0.2x ships its own copy of Click
        from typer import _click as click
    except ImportError:  # pragma: no cover - older Typer on real Click
        import click
    return click


def _rank_prefix() -> str:
    """'rank N: ' inside a multi-process job, so each process's error says who it is."""
    import os

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and "RANK" in os.environ:
        return f"rank {os.environ['RANK']}: "
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error becomes one line on stderr and a non-zero exit."""
    click = _click()
    options.ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = app(args=argv, prog_name="sagan", standalone_mode=False)
    except SaganError as exc:
        print(f"error: {_rank_prefix()}{exc}", file=sys.stderr)
        if exc.exit_code == EXIT_PEER_LOST:  # a broken process group can abort at interpreter shutdown
            from sagan_cli.train.distributed import exit_now

            exit_now(exc.exit_code)
        sys.exit(exc.exit_code)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # bare `sagan`: show help
        print(exc.format_message())
        sys.exit(EXIT_OK)
    except click.ClickException as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see `{ctx.command_path} --help`)"
        # one line: Click lays some messages out over several (a choice list, one item a line)
        message = re.sub(r"\s*\n\s*", " ", exc.format_message().strip())
        print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    if rv == EXIT_INTERRUPTED:  # Typer turns a Ctrl-C that no command handled into a silent Exit(130)
        print("error: interrupted", file=sys.stderr)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)
