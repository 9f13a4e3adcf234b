"""What the commands share: the options every command spells the same way, and small helpers.

Nothing here imports torch or NumPy (help and completion load this module).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from sagan_cli.util.device import DEVICE_HELP
from sagan_cli.util.errors import SaganError

ARGV: list[str] = []  # the words after `sagan`, for `train --nproc` to hand on to its processes


DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N; what --device <TAB> offers


def _complete_device(incomplete: str) -> list[str]:
    """--device <TAB>: the forms, with cuda:0..cuda:7 once 'cuda:' is typed (no torch import: it is a keystroke)."""
    forms = [*DEVICES, *(f"cuda:{i}" for i in range(8))] if incomplete.startswith("cuda:") else list(DEVICES)
    return [f for f in forms if f.startswith(incomplete)]


def device_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--device", help=f"{DEVICE_HELP}.", autocompletion=_complete_device)


def ckpt_argument() -> typer.models.ArgumentInfo:
    return typer.Argument(None, help="Checkpoint file, run directory or exported generator (sagan export) (default: newest run's latest.pt under ./runs).")


def class_option(help: str) -> typer.models.OptionInfo:
    """--class K|NAME of a conditional checkpoint (ids, ranges, names, comma lists: inspect/classes.py)."""
    return typer.Option(None, "--class", help=help + " Ids, names (the checkpoint's dataset classes) or a list: 2, "
                                              "church, 0-9, 0,3,cat. Default for a conditional checkpoint: uniform per seed.")


def runs_option() -> typer.models.OptionInfo:
    return typer.Option(Path("runs"), "--runs", help="Runs root: the parent of run directories, where 'latest' and an omitted CKPT look.")


def num_option(default: int | None, help: str, **limits) -> typer.models.OptionInfo:
    """-n/--num: how many images the command draws (``limits``: Typer's min=/max=)."""
    return typer.Option(default, "-n", "--num", help=help, **limits)


def seed_option(default: int | None, help: str) -> typer.models.OptionInfo:
    return typer.Option(default, "--seed", min=0, help=help)


# Spellings renamed for one vocabulary across the commands (docs/cli.md), still accepted for one release:
# command -> {old: new}. They are rewritten before the command parses its words, with a warning, and
# are in no help or completion.
RENAMED = {
    "train": {"--outdir": "--runs", "--n-samples": "--num-samples"},
    "evaluate": {"--outdir": "--runs", "--num-gen": "--num"},
    "sample": {"--n": "--num"},
}


def renamed(command: str, words: list[str], warn) -> list[str]:
    """``words`` (a command's arguments) with old option spellings replaced by the new ones (``--n=5`` too);
    nothing after a bare ``--`` is touched. ``warn(text)`` hears of each old spelling once."""
    table = RENAMED.get(command, {})
    out, told = [], set()
    for i, word in enumerate(words):
        if word == "--":
            out.extend(words[i:])
            break
        flag, eq, value = word.partition("=")
        if flag in table:
            if flag not in told:
                warn(f"{flag} is now {table[flag]}; the old spelling will be removed in the next release")
                told.add(flag)
            word = table[flag] + eq + value
        out.append(word)
    return out


def ema_option() -> typer.models.OptionInfo:
    return typer.Option(True, "--ema/--no-ema", help="Use the EMA generator (if the checkpoint has one).")


def standing_option() -> typer.models.OptionInfo:
    return typer.Option(True, "--standing-stats/--no-standing-stats",
                        help="Re-estimate G's BatchNorm statistics for its weights before drawing (docs/model.md).")


def choices(name: str, values) -> type[Enum]:
    """A str Enum of ``values`` (a table's keys), so Typer checks and completes them."""
    return Enum(name, {v: v for v in values}, type=str)


def given(ctx: typer.Context, name: str) -> str | None:
    """Where parameter ``name`` came from: 'COMMANDLINE', 'ENVIRONMENT', 'DEFAULT' (None if unknown)."""
    source = ctx.get_parameter_source(name)
    return source.name if source is not None else None


def explicit(ctx: typer.Context) -> set[str]:
    """The parameters the user set (on the command line or through their environment variable)."""
    return {name for name in ctx.params if given(ctx, name) in ("COMMANDLINE", "ENVIRONMENT")}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 image', '2 images' (``plural`` for irregular nouns: count(1, 'entry', 'entries'))."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def png_out(path: Path | None, flag: str = "--out") -> Path | None:
    if path is not None and path.suffix.lower() != ".png":
        raise SaganError(f"{flag} {path}: output is written as PNG, give a file name ending in .png")
    return path


def image_out(path: Path | None, animation: bool, flag: str = "--out") -> Path | None:
    """``path`` if its ending is one the output may take: PNG, or with ``animation`` (``--interpolate``) also a
    GIF or WebP animation (util/images.py ANIMATION_SUFFIXES)."""
    from sagan_cli.util.images import ANIMATION_SUFFIXES

    if path is None or path.suffix.lower() == ".png":
        return path
    if path.suffix.lower() in ANIMATION_SUFFIXES:
        if animation:
            return path
        raise SaganError(f"{flag} {path}: an animation is written only with --interpolate (one frame per step); "
                         "a grid is written as PNG, give a file name ending in .png")
    if animation:
        raise SaganError(f"{flag} {path}: with --interpolate the output is a PNG sheet or an animation, give a file "
                         "name ending in .png, .gif or .webp")
    return png_out(path, flag)


def scale_option(what: str) -> typer.models.OptionInfo:
    from sagan_cli.util.images import MAX_SCALE

    return typer.Option(1, "--scale", min=1, max=MAX_SCALE, help=f"Upscale {what} N times, nearest-neighbour (each pixel an N×N block).")


def fps_option(default: float) -> typer.models.OptionInfo:
    return typer.Option(default, "--fps", min=0.5, max=50.0, help="Frames per second of an animation.")


def say(text: str) -> None:
    """A line for the user on stdout, printed as given (no Rich markup or highlighting)."""
    from rich.console import Console

    Console(highlight=False, soft_wrap=True).print(text, markup=False)
