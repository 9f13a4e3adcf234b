"""`sagan evaluate`: FID / IS / KID / precision-recall with the standard Inception protocol, and SWD.

Thin: parse, check what can be checked without torch, call ``sagan_cli.metrics.evaluate``. Torch
and NumPy are imported inside the body so `sagan --help` and completion stay fast.

The metric flags (--fid --is --kid --pr --swd) are not written here: each entry of
``sagan_cli.metrics.table.METRICS`` gets one (see ``WithMetricFlags``), right after CKPT.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.metrics.table import DEFAULT, METRICS, SWD_MAX_IMAGES
from sagan_cli.util.errors import SaganError


class WithMetricFlags:
    """A command function as Typer sees it, plus one boolean ``--flag`` per metrics-table entry.

    Typer makes one option per parameter of the function's signature; this signature is the
    function's own with a ``metric_<name>`` parameter per entry inserted after CKPT, and it is built
    from the table each time Typer builds the command (every `sagan` run), so an entry added to
    ``METRICS`` has its flag. The function receives the flags in its ``**metric_flags``.
    """

    def __init__(self, run):
        functools.update_wrapper(self, run)
        self._run = run

    @property
    def __signature__(self) -> inspect.Signature:
        own = [p for p in inspect.signature(self._run, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
        flags = [inspect.Parameter(m.param, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=bool,
                                   default=typer.Option(False, m.flag, help=m.help)) for m in METRICS.values()]
        after = [p.name for p in own].index("ckpt") + 1
        return inspect.Signature(own[:after] + flags + own[after:])

    def __call__(self, **params):
        return self._run(**params)


@WithMetricFlags
def evaluate(
    ctx: typer.Context,
    ckpt: str | None = options.ckpt_argument(),
    fid_sqrtm: bool = typer.Option(False, "--fid-sqrtm", help="FID's trace term by scipy.linalg.sqrtm, as pytorch-fid computes it (the slower reference path)."),
    num: int | None = options.num_option(None, f"Generated images (default 50000; --swd alone: as many as it uses, at most {SWD_MAX_IMAGES}; with --samples: all the images there).", min=2),
    data: Path | None = typer.Option(None, "--data", help="Real images: a prepared dataset (default: the dataset the checkpoint was trained on)."),
    samples: Path | None = typer.Option(None, "--samples", help="Evaluate this folder of images or prepared dataset instead of a checkpoint."),
    num_real: int | None = typer.Option(None, "--num-real", min=2, help="Real images to use, a fixed random subset (default: all)."),
    inception_weights: Path | None = typer.Option(None, "--inception-weights", envvar="SAGAN_INCEPTION_WEIGHTS",
                                                  help="FID Inception weights file (pytorch-fid or torch-fidelity .pth)."),
    download_weights: bool = typer.Option(False, "--download-weights", help="Download the Inception weights if they are not found (sha256 checked)."),
    real_stats: Path | None = typer.Option(None, "--real-stats", help="Precomputed real statistics (.npz from sagan or pytorch-fid) instead of --data."),
    batch: int = typer.Option(64, "--batch", min=1, help="Images per forward pass (generator and Inception)."),
    device: str = options.device_option(),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON only (progress and messages go to stderr)."),
    ema: bool = options.ema_option(),
    standing: bool = options.standing_option(),
    seed: int = options.seed_option(0, "First seed: image i is drawn from seed SEED+i, as `sagan sample --seed` draws it."),
    klass: str | None = options.class_option("One class of a conditional checkpoint: its images against that class's "
                                             "real images (when the data is labelled)."),
    per_class: bool = typer.Option(False, "--per-class", help="Intra-class values: each class of a conditional checkpoint "
                                                              "against its own real images (classes too small are skipped, "
                                                              "with the reason)."),
    runs: Path = options.runs_option(),
    **metric_flags: bool,
):
    """Score a checkpoint (or a folder of images) with FID, IS, KID, precision/recall and SWD."""
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    from_env = options.given(ctx, "inception_weights") == "ENVIRONMENT"
    if samples is not None:
        for name, flag in (("seed", "--seed"), ("ema", "--ema/--no-ema"), ("standing", "--standing-stats/--no-standing-stats"),
                           ("runs", "--runs"), ("klass", "--class"), ("per_class", "--per-class")):
            if options.given(ctx, name) == "COMMANDLINE":
                raise SaganError(f"{flag} applies to a checkpoint's generator; it has no effect with --samples")

    import json
    import sys

    from rich.console import Console

    from sagan_cli.metrics.evaluate import Request
    from sagan_cli.metrics.evaluate import evaluate as run
    from sagan_cli.metrics.report import append_metrics, print_table

    console = Console(stderr=json_out, highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def say(text: str) -> None:
        console.print(text, markup=False)

    def warn(text: str) -> None:
        errors.print(f"warning: {text}", markup=False)

    chosen = tuple(m.name for m in METRICS.values() if metric_flags.get(m.param)) or DEFAULT
    req = Request(ckpt=ckpt, outdir=runs, samples=samples, data=data, real_stats=real_stats, metrics=chosen,
                  fid_sqrtm=fid_sqrtm, num_gen=num, num_real=num_real, weights=inception_weights,
                  weights_from_env=from_env, download_weights=download_weights, batch=batch, device=device, ema=ema, standing=standing,
                  seed=seed, klass=klass)
    if per_class:  # one evaluation per class (metrics/classes.py); not appended to the run's metrics.jsonl
        from sagan_cli.metrics.classes import per_class as run_per_class, print_per_class

        result = run_per_class(req, console, say, warn)
        if json_out:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
        else:
            print_per_class(result, console)
        return
    record, run_dir = run(req, console, say, warn)
    if run_dir is not None and klass is None:  # one class's values are not the model's: kept out of metrics.jsonl
        try:
            record["metrics_file"] = str(append_metrics(run_dir, {k: v for k, v in record.items()}))
        except OSError as exc:
            warn(f"could not append to {run_dir / 'metrics.jsonl'} ({exc.strerror or exc})")
    if json_out:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        sys.stdout.flush()
    else:
        print_table(record, console)
        if record.get("metrics_file"):
            say(f"appended to {record['metrics_file']}")
