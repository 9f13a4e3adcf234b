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

app = typer.Typer(help="Convert LSUN, an image folder, CIFAR-10 or the built-in synthetic scenes into a prepared dataset.",
                  no_args_is_help=True)

CIFAR_SPLITS = ("train", "test")  # cifar.SPLITS' keys (that module imports NumPy)
SYNTHETIC_MAX_CLASSES = 12  # synthetic.MAX_CLASSES: 3 shape kinds × 4 colour families

LsunCategory = options.choices("LsunCategory", CATEGORIES)
Split = options.choices("Split", SPLITS)
CifarSplit = options.choices("CifarSplit", CIFAR_SPLITS)
Labels = options.choices("Labels", ("subdirs",))
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
OUT = typer.Option(None, "--out", help="Dataset directory to write (default: data/lsun-<category>[+<category>...]-<imsize>, "
                                      "data/folder-<folder name>-<imsize> or data/synthetic[-<K>c]-<imsize>).")
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
    if res.classes:
        options.say(_classes_line(res.classes, res.class_counts or []))
    if res.preview is not None:
        options.say(f"preview: {res.preview}")


def _classes_line(classes: list[str], counts: list[int], shown: int = 12) -> str:
    """'3 classes: disc-red 100, square-green 100, triangle-blue 100' (the first ``shown``, then the range)."""
    pairs = ", ".join(f"{name} {n}" for name, n in list(zip(classes, counts))[:shown])
    more = f", … ({len(classes) - shown} more; {min(counts)} to {max(counts)} images a class)" if len(classes) > shown else ""
    return f"{len(classes)} classes (images per class in meta.json): {pairs}{more}"


@app.command()
def lsun(
    categories: list[LsunCategory] = typer.Argument(..., metavar="CATEGORY", show_default=False,
                                                    help="LSUN scene category; several make one labelled dataset, "
                                                         "one class per category, in the order given."),
    split: Split = typer.Option(Split.train, "--split", help="LSUN split."),
    lmdb: list[Path] | None = typer.Option(None, "--lmdb", help="Unpacked <category>_<split>_lmdb/ directory holding "
                                           "data.mdb: one per category, in order, or one folder holding them all."),
    zip_file: list[Path] | None = typer.Option(None, "--zip", help="The downloaded <category>_<split>_lmdb.zip "
                                               "(unpacked into --lsun-dir): one per category, in order."),
    download: bool = typer.Option(False, "--download", help="Fetch the zip from the LSUN server (resumes a partial download)."),
    lsun_dir: Path = typer.Option(Path("data/lsun"), "--lsun-dir", help="Where --download saves the zip and zips are unpacked."),
    imsize: int = IMSIZE, out: Path | None = OUT, max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS,
    crop: Crop = CROP, resample: Resample = RESAMPLE, min_size: int | None = MIN_SIZE, force: bool = FORCE,
    preview: bool = PREVIEW,
):
    """LSUN scenes from an lmdb directory, its zip, or a download (one of --lmdb, --zip, --download);
    several categories make one labelled dataset."""
    from sagan_cli.util.errors import SaganError

    given = [flag for flag, value in (("--lmdb", lmdb), ("--zip", zip_file), ("--download", download)) if value]
    if len(given) > 1:
        raise SaganError(f"{' and '.join(given)} conflict: give one source of the LSUN images")
    cats, spl = [c.value for c in categories], split.value
    if len(set(cats)) < len(cats):
        twice = next(c for c in cats if cats.count(c) > 1)
        raise SaganError(f"category {twice} is given twice; each category is one class")
    lmdbs, zips = list(lmdb or []), list(zip_file or [])
    for flag, paths, allowed in (("--lmdb", lmdbs, {1, len(cats)}), ("--zip", zips, {len(cats)})):
        if paths and len(paths) not in allowed:
            raise SaganError(f"{len(paths)} {flag} for {options.count(len(cats), 'category', 'categories')}: "
                             f"give one {flag} per category, in order" + (" (or one folder holding them all)" if flag == "--lmdb" else ""))
    name = "+".join(cats)
    out = out or Path("data") / (f"lsun-{name}-{imsize}" if spl == "train" else f"lsun-{name}-{spl}-{imsize}")
    min_size = default_min_size(imsize) if min_size is None else min_size
    request = {"source": "lsun", "category": cats[0] if len(cats) == 1 else cats, "split": spl, "imsize": imsize,
               "crop": crop.value, "resample": resample.value, "max_images": max_images, "min_size": min_size}

    def make_source():
        from sagan_cli.data.prepare.lsun import LmdbSource, resolve_lmdb, stem

        def one(i, cat):
            path = (lmdbs[i] if len(lmdbs) == len(cats) else lmdbs[0] / stem(cat, spl)) if lmdbs else None
            return LmdbSource(resolve_lmdb(cat, spl, path, zips[i] if zips else None, download, lsun_dir, options.say),
                              cat, spl)

        if len(cats) == 1:
            return one(0, cats[0])
        from sagan_cli.data.prepare.classes import ClassesSource

        parts = [(cat, one(i, cat)) for i, cat in enumerate(cats)]
        return ClassesSource("lsun", parts, f"LSUN {' + '.join(cats)} {spl}",
                             {"source": "lsun", "category": None, "categories": cats, "split": spl,
                              "source_path": [str(source.directory) for _, source in parts]})

    run(out, request, make_source, imsize, crop.value, resample.value, max_images, workers, force, preview, min_size)


@app.command()
def folder(
    directory: Path = typer.Argument(..., metavar="DIR", help=f"Folder of images ({', '.join(e[1:] for e in IMAGE_SUFFIXES)}; searched recursively).", show_default=False),
    labels: Labels | None = typer.Option(None, "--labels", show_default=False,
                                         help="subdirs: one class per immediate subfolder (the ImageNet train/<class>/ "
                                              "layout), a labelled dataset; images at the top level are refused."),
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
    if labels is not None:
        request["labels"] = labels.value

    def make_source():
        from sagan_cli.data.prepare.folder import FolderSource

        source = FolderSource(root, labels.value if labels else None)
        if getattr(source, "empty", None):
            shown = ", ".join(source.empty[:5]) + (", …" if len(source.empty) > 5 else "")
            options.say(f"{options.count(len(source.empty), 'subfolder')} without images, not a class: {shown}")
        return source

    run(out, request, make_source, imsize, crop.value, resample.value, max_images, workers, force, preview, min_size)


@app.command()
def synthetic(
    count: int = typer.Option(10_000, "--count", min=1, help="Number of scenes."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed: the same seed gives the same bytes."),
    classes: int | None = typer.Option(None, "--classes", min=2, max=SYNTHETIC_MAX_CLASSES, show_default=False,
                                       help="A labelled dataset of this many classes: scene i is of class i % K, whose "
                                            "shape kind and colour family the class decides (2 to 12)."),
    imsize: int = IMSIZE, out: Path | None = OUT, max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS,
    force: bool = FORCE, preview: bool = PREVIEW,
):
    """Procedural scenes needing no download: coloured shapes mirrored left↔right on a gradient."""
    out = out or Path("data") / (f"synthetic-{imsize}" if classes is None else f"synthetic-{classes}c-{imsize}")
    request = {"source": "synthetic", "count": count, "seed": seed, "imsize": imsize, "max_images": max_images}
    if classes is not None:
        request["classes"] = classes

    def make_source():
        from sagan_cli.data.prepare.synthetic import SyntheticSource

        return SyntheticSource(count, seed, classes)

    run(out, request, make_source, imsize, None, None, max_images, workers, force, preview)


@app.command()
def cifar10(
    split: CifarSplit = typer.Option(CifarSplit.train, "--split", help="train: the 50,000 images of data_batch_1-5; test: the 10,000 of test_batch."),
    archive: Path | None = typer.Option(None, "--archive", help="The binary version's archive, cifar-10-binary.tar.gz "
                                        "(the Python version is refused: it is pickles)."),
    download: bool = typer.Option(False, "--download", help="Fetch the binary archive from the CIFAR-10 page and check its published MD5."),
    cifar_dir: Path = typer.Option(Path("data/cifar10"), "--cifar-dir", help="Where --download saves the archive and its batches are unpacked."),
    out: Path | None = typer.Option(None, "--out", help="Dataset directory to write (default: data/cifar10-<split>-32)."),
    max_images: int | None = MAX_IMAGES, workers: int | None = WORKERS, force: bool = FORCE, preview: bool = PREVIEW,
):
    """CIFAR-10 from its binary archive (or a download): labelled, 10 classes, 32 px as they are (no resize)."""
    spl = split.value
    out = out or Path("data") / f"cifar10-{spl}-32"
    request = {"source": "cifar10", "split": spl, "imsize": 32, "max_images": max_images}

    def make_source():
        from sagan_cli.data.prepare import cifar

        path = cifar.resolve_archive(archive, download, cifar_dir, options.say)
        return cifar.CifarSource(cifar.unpack(path, cifar_dir, spl), spl, path)

    run(out, request, make_source, 32, None, None, max_images, workers, force, preview)
