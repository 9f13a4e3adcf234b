"""`sagan prepare ...`: the sub-commands that build prepared datasets.

Thin: parse, validate, call ``sagan_cli.data.prepare.pipeline``. NumPy, Pillow and lmdb are
imported inside the command bodies so that `sagan --help` and completion stay fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.data.prepare.imageops import CROPS, RESAMPLES, default_min_size
from sagan_cli.data.prepare.lsun import CATEGORIES, SPLITS
from sagan_cli.util.images import IMAGE_SUFFIXES, IMSIZES, IMSIZES_TEXT, check_imsize

app = typer.Typer(help="Convert LSUN, an image folder or the built-in synthetic scenes into a prepared dataset.",
                  no_args_is_help=True)

LsunCategory = options.choices("LsunCategory", CATEGORIES)
Split = options.choices("Split", SPLITS)
Crop = options.choices("Crop", CROPS)
Resample = options.choices("Resample", RESAMPLES)


def _imsize(ctx: typer.Context, value: int) -> int:
    """--imsize is checked while the command line is read, before any work: the sizes train takes."""
    return value if ctx.resilient_parsing else check_imsize(value)


def _complete_imsize(incomplete: str) -> list[str]:
    return [str(size) for size in IMSIZES if str(size).startswith(incomplete)]


IMSIZE = typer.Option(64, "--imsize", callback=_imsize, autocompletion=_complete_imsize,
                      help=f"Side of the square output images, in pixels: {IMSIZES_TEXT} (the sizes train takes).")
MIN_SIZE = typer.Option(None, "--min-size", min=0, show_default=False,
                        help="Skip source images whose short side is under this many pixels (default: half --imsize); "
                             "0 keeps every image.")
OUT = typer.Option(None, "--out", help="Dataset directory to write (default: data/lsun-<category>-<imsize>, "
                                      "data/folder-<folder name>-<imsize> or data/synthetic-<imsize>).")
MAX_IMAGES = typer.Option(None, "--max-images", min=1, help="Stop after this many images (default: all).")
WORKERS = typer.Option(None, "--workers", min=1, help="Decoding processes (default: all available cores).")
CROP = typer.Option(Crop.center, "--crop", help="center: centre square of the short side; none: squash the whole frame.")
RESAMPLE = typer.Option(Resample.lanczos, "--resample", help="Pillow resampling filter for the resize.")
FORCE = typer.Option(False, "--force", help="Rebuild even if --out already holds a finished (or different) dataset.")
PREVIEW = typer.Option(False, "--preview", help="Also write preview.png: a grid of the first 64 prepared images.")


def _skipped(res, min_size: int | None) -> str:
    """'no entries skipped', '1 undecodable entry skipped (...)', '2 images under --min-size 16 skipped (...)'."""
    if not res.skipped:
        return "no entries skipped"
    undecodable = res.skipped - res.small
    parts = [options.count(undecodable, "undecodable entry", "undecodable entries")] if undecodable else []
    if res.small:
        parts.append(f"{options.count(res.small, 'image')} under --min-size {min_size}")
    return f"{' and '.join(parts)} skipped (keys and reasons in meta.json)"


def run(out: Path, request: dict, make_source, imsize: int, crop, resample, max_images, workers, force, preview,
        min_size: int | None = None) -> None:
    """Prepare through the pipeline and print the summary. ``min_size`` None: no size check (synthetic)."""
    from sagan_cli.data.prepare.pipeline import Options, prepare
    from sagan_cli.util.device import usable_cores

    opts = Options(imsize=imsize, crop=crop, resample=resample, max_images=max_images,
                   workers=workers or usable_cores(), force=force, preview=preview, min_size=min_size)
    res = prepare(out, request, make_source, opts, options.say)
    skipped = _skipped(res, min_size)
    if res.already:
        options.say(f"{out} is already prepared: {options.count(res.count, 'image')} of {imsize}px, {skipped}; pass --force to rebuild it")
    else:
        resumed = f", resumed at {res.resumed_from}" if res.resumed_from else ""
        speed = f"{res.rate:.0f} img/s with {res.workers} worker{'s' if res.workers != 1 else ''}{resumed}" \
            if res.workers else "only the files were left to finish"
        options.say(f"prepared {options.count(res.count, 'image')} of {imsize}px in {out} in {res.elapsed_s:.1f}s ({speed}); {skipped}")
    if res.preview is not None:
        options.say(f"preview: {res.preview}")


@app.command()
def lsun(
    category: LsunCategory = typer.Argument(..., help="LSUN scene category.", show_default=False),
    split: Split = typer.Option(Split.train, "--split", help="LSUN split."),
    lmdb: Path | None = typer.Option(None, "--lmdb", help="Unpacked <category>_<split>_lmdb/ directory holding data.mdb."),
    zip_file: Path | None = typer.Option(None, "--zip", help="The downloaded <category>_<split>_lmdb.zip (unpacked into --lsun-dir)."),
    download: bool = typer.Option(False, "--download", help="Fetch the zip from the LSUN server (resumes a partial download)."),
    lsun_dir: Path = typer.Option(Path("data/lsun"), "--lsun-dir", help="Where --download saves the zip and zips are unpacked."),
    imsize: int = IMSIZE, out: Path | None = OUT, max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS,
    crop: Crop = CROP, resample: Resample = RESAMPLE, min_size: int | None = MIN_SIZE, force: bool = FORCE,
    preview: bool = PREVIEW,
):
    """LSUN scenes from an lmdb directory, its zip, or a download (one of --lmdb, --zip, --download)."""
    from sagan_cli.util.errors import SaganError

    given = [flag for flag, value in (("--lmdb", lmdb), ("--zip", zip_file), ("--download", download)) if value]
    if len(given) > 1:
        raise SaganError(f"{' and '.join(given)} conflict: give one source of the LSUN images")
    cat, spl = category.value, split.value
    out = out or Path("data") / (f"lsun-{cat}-{imsize}" if spl == "train" else f"lsun-{cat}-{spl}-{imsize}")
    min_size = default_min_size(imsize) if min_size is None else min_size
    request = {"source": "lsun", "category": cat, "split": spl, "imsize": imsize, "crop": crop.value,
               "resample": resample.value, "max_images": max_images, "min_size": min_size}

    def make_source():
        from sagan_cli.data.prepare.lsun import LmdbSource, resolve_lmdb

        return LmdbSource(resolve_lmdb(cat, spl, lmdb, zip_file, download, lsun_dir, options.say), cat, spl)

    run(out, request, make_source, imsize, crop.value, resample.value, max_images, workers, force, preview, min_size)


@app.command()
def folder(
    directory: Path = typer.Argument(..., metavar="DIR", help=f"Folder of images ({', '.join(e[1:] for e in IMAGE_SUFFIXES)}; searched recursively).", show_default=False),
    imsize: int = IMSIZE, out: Path | None = OUT, max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS,
    crop: Crop = CROP, resample: Resample = RESAMPLE, min_size: int | None = MIN_SIZE, force: bool = FORCE,
    preview: bool = PREVIEW,
):
    """Every image under DIR, recursively, in sorted path order."""
    from sagan_cli.util.errors import SaganError

    if not directory.is_dir():
        raise SaganError(f"folder not found: {directory}" if not directory.exists() else f"{directory} is not a directory")
    root = directory.resolve()
    out = out or Path("data") / f"folder-{root.name or 'root'}-{imsize}"
    min_size = default_min_size(imsize) if min_size is None else min_size
    request = {"source": "folder", "path": str(root), "imsize": imsize, "crop": crop.value,
               "resample": resample.value, "max_images": max_images, "min_size": min_size}

    def make_source():
        from sagan_cli.data.prepare.folder import FolderSource

        return FolderSource(root)

    run(out, request, make_source, imsize, crop.value, resample.value, max_images, workers, force, preview, min_size)


@app.command()
def synthetic(
    count: int = typer.Option(10_000, "--count", min=1, help="Number of scenes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed: the same seed gives the same bytes."),
    imsize: int = IMSIZE, out: Path | None = OUT, max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS,
    force: bool = FORCE, preview: bool = PREVIEW,
):
    """Procedural scenes needing no download: coloured shapes mirrored left↔right on a gradient."""
    out = out or Path("data") / f"synthetic-{imsize}"
    request = {"source": "synthetic", "count": count, "seed": seed, "imsize": imsize, "max_images": max_images}

    def make_source():
        from sagan_cli.data.prepare.synthetic import SyntheticSource

        return SyntheticSource(count, seed)

    run(out, request, make_source, imsize, None, None, max_images, workers, force, preview)
