"""`sagan evaluate`: check every input, then extract features and compute the chosen metrics.

Order of work: everything cheap is validated first (weights present, checkpoint or samples readable,
real data or statistics usable, image counts, the weights' key set), so a mistake costs seconds, not
the hour that 50 000 generated images take. Then the real statistics (from the cache when possible),
then the generated features, then the metrics. What each metric needs and how it is computed is its
entry in ``sagan_cli.metrics.table.METRICS``; nothing here names a metric except FID's --fid-sqrtm.
When no chosen metric needs the Inception (SWD alone), the weights are neither looked for nor loaded and
the passes over the images only feed the metrics' accumulators.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sagan_cli.metrics.table import METRICS, Context, RealSide, chosen
from sagan_cli.util.errors import SaganError

DEFAULT_NUM_GEN = 50_000
REAL_SUBSET_SEED = 0  # which real images --num-real picks (part of the cache key through num_real)


@dataclass
class Request:
    ckpt: str | None = None
    outdir: Path = Path("runs")
    samples: Path | None = None
    data: Path | None = None
    real_stats: Path | None = None
    metrics: tuple[str, ...] = ("fid",)
    fid_sqrtm: bool = False  # FID's trace term by scipy.linalg.sqrtm (the reference path)
    num_gen: int | None = None
    num_real: int | None = None
    weights: Path | None = None
    weights_from_env: bool = False
    download_weights: bool = False
    batch: int = 64
    device: str = "auto"
    ema: bool = True
    standing: bool = True  # G's BatchNorm statistics re-estimated first (models/standing.py)
    seed: int = 0
    klass: str | None = None  # --class of a conditional checkpoint (metrics/classes.py); None: uniform labels
    generator: tuple | None = None  # (G ready to draw, its ModelConfig, what to call it): a G in memory (training)


@dataclass
class Real:
    """Where the real side comes from: a statistics file, or a dataset (maybe through the cache)."""
    description: str
    stats_file: Path | None = None
    stats: object = None  # RealStats from --real-stats
    images: np.ndarray | None = None
    indices: np.ndarray | None = None
    fingerprint: str = ""
    count: int = 0
    num_real: int = 0


def check_conflicts(req: Request) -> None:
    if req.fid_sqrtm and "fid" not in chosen(req.metrics):
        raise SaganError("--fid-sqrtm applies to FID, which is not among the chosen metrics; add --fid or drop --fid-sqrtm")
    from_images = [METRICS[m].label for m in chosen(req.metrics) if not METRICS[m].needs_inception and METRICS[m].needs_real]
    if req.real_stats is not None and from_images:
        raise SaganError(f"--real-stats holds Inception statistics, which {_listed(from_images)} cannot use "
                         "(it compares the images themselves); pass --data DIR")
    if req.ckpt is not None and req.samples is not None:
        raise SaganError("CKPT and --samples conflict: evaluate either a checkpoint or a folder of images")
    if req.real_stats is not None and req.data is not None:
        raise SaganError("--real-stats and --data conflict: the real side is either precomputed statistics or a dataset")
    if req.real_stats is not None and req.num_real is not None:
        raise SaganError("--num-real has no effect with --real-stats (the statistics are already computed); drop one")
    if req.weights is not None and req.download_weights:
        raise SaganError("--download-weights and --inception-weights conflict: a given weights file is never downloaded")


def find_weights(req: Request) -> Path | None:
    """The weights file, None if it is to be downloaded; missing and not to be downloaded is an error."""
    from sagan_cli.metrics import weights

    found = weights.find_weights(req.weights, req.weights_from_env)
    if found is None and not req.download_weights:
        raise weights.missing_weights_error()
    return found


def default_num(metrics: tuple[str, ...], num_real: int | None = None) -> int:
    """Generated images when -n is not given: the most any chosen metric uses (``num_real`` None: not known yet)."""
    return max(METRICS[m].default_num(num_real) if METRICS[m].default_num else DEFAULT_NUM_GEN for m in metrics)


def _generated_text(source, path, req: Request) -> str:
    seeds = source.seeds
    return (f"{len(seeds)} images of {source.imsize}px from {path} ({'EMA' if req.ema else 'raw'} G"
            f"{', standing stats' if req.standing else ''}, seeds {seeds[0]}-{seeds[-1]})")


def fit_generated(req: Request, source, info: dict, metrics: tuple[str, ...], real: Real | None):
    """Without -n, a checkpoint generates no more images than the chosen metrics use (SWD alone: as many as
    it compares, which depends on the real count): (source, info), shortened where that is fewer."""
    from sagan_cli.metrics.sources import GeneratorSource

    if req.num_gen is not None or not isinstance(source, GeneratorSource):
        return source, info
    n = default_num(metrics, real.num_real if real is not None else None)
    if n >= len(source):
        return source, info
    source = source.head(n)
    return source, dict(info, generated=_generated_text(source, info["checkpoint"], req))


def open_generated(req: Request, device, warn: Callable[[str], None] = lambda text: None):
    """(source, info dict, run dir or None, checkpoint state or None)."""
    from sagan_cli.metrics.sources import GeneratorSource, open_samples

    if req.samples is not None:
        source, desc = open_samples(req.samples, req.num_gen, warn)
        return source, {"samples": str(req.samples), "generated": desc}, None, None
    if req.generator is not None:
        G, cfg, what = req.generator
        n = req.num_gen or default_num(chosen(req.metrics), None)
        seeds = range(req.seed, req.seed + n)
        return (GeneratorSource(G, cfg.z_dim, seeds, device, cfg.imsize, cfg.num_classes),
                {"generated": f"{n} images of {cfg.imsize}px from {what} (seeds {seeds[0]}-{seeds[-1]})"}, None, None)
    from sagan_cli.models.load import load_generator, model_config
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg, run_dir_of

    path = resolve_checkpoint_arg(req.ckpt, req.outdir)
    state = load_checkpoint(path)
    from sagan_cli.metrics.classes import resolve

    klass, labels = resolve(req.klass, state, model_config(state))  # before the (standing statistics) work
    G, cfg = load_generator(state, req.ema, device, req.standing)
    n = req.num_gen or default_num(chosen(req.metrics))
    source = GeneratorSource(G, cfg.z_dim, range(req.seed, req.seed + n), device, cfg.imsize, cfg.num_classes, klass)
    info = {"checkpoint": str(path), "step": int(state.get("step", 0)), "images_seen": int(state.get("images_seen", 0)),
            "ema": req.ema, "standing_stats": req.standing, "seed": req.seed,
            "generated": _generated_text(source, path, req), **labels}
    return source, info, run_dir_of(path), state


def open_real(req: Request, state: dict | None, warn: Callable[[str], None], klass: int | None = None) -> Real:
    from sagan_cli.data.dataset import fingerprint_array, open_dataset
    from sagan_cli.metrics.stats_cache import load_stats

    if req.real_stats is not None:
        stats = load_stats(req.real_stats)
        num_real = len(stats.features) if stats.features is not None else int(stats.meta.get("num_real", 0))
        return Real(description=f"statistics file {req.real_stats}", stats_file=Path(req.real_stats), stats=stats,
                    num_real=num_real)
    data = req.data
    if data is None:
        recorded = (state or {}).get("data") or {}
        if not recorded.get("path"):
            raise SaganError("no real data to compare with: pass --data DIR (a prepared dataset) or --real-stats FILE")
        data = Path(recorded["path"])
        if not data.exists():
            raise SaganError(f"the checkpoint's dataset {data} is not there (moved?); pass --data DIR or --real-stats FILE")
    ds = open_dataset(data)
    recorded_fp = ((state or {}).get("data") or {}).get("fingerprint")
    if req.data is None and recorded_fp and ds.fingerprint and recorded_fp != ds.fingerprint:
        warn(f"{data} is not the dataset this checkpoint was trained on (fingerprint differs); evaluating against it anyway")
    from sagan_cli.metrics.classes import real_pool

    pool, tag = real_pool(ds, klass, data, warn)  # --class: that class's images only
    count = len(ds) if pool is None else len(pool)
    num_real = count if req.num_real is None else req.num_real
    if num_real > count:
        raise SaganError(f"--num-real {num_real}: {data} holds only {count} images")
    indices = None
    if num_real < count:  # a fixed random subset, in file order (memmap-friendly)
        indices = np.sort(np.random.RandomState(REAL_SUBSET_SEED).choice(count, num_real, replace=False))
    if pool is not None:
        indices = pool if indices is None else pool[indices]
    fingerprint = tag + (ds.fingerprint or fingerprint_array(ds.images))
    return Real(description=f"{num_real} of {count} images{f' of class {klass}' if tag else ''} of {data}", images=ds.images, indices=indices,
                fingerprint=fingerprint, count=count, num_real=num_real)


def check_sizes(state: dict | None, real: Real | None) -> None:
    """A checkpoint is scored against real images of the size it generates: the Inception resize would
    make a 32-px generator and 64-px data comparable in shape only, not a number anyone reports."""
    if state is None or real is None or real.images is None:
        return
    gen_size, real_size = int(state["model_config"]["imsize"]), int(real.images.shape[-1])
    if gen_size != real_size:
        raise SaganError(f"the checkpoint generates {gen_size}px images but the real ones ({real.description}) are {real_size}px; "
                         f"score it against a {gen_size}px dataset (sagan prepare ... --imsize {gen_size})")


def check_image_sizes(metrics: tuple[str, ...], gen_source, real: Real | None) -> None:
    """For a metric that compares the images themselves: every generated image of the real images' size,
    and that size at least its minimum (a checkpoint's size was checked by ``check_sizes``)."""
    if real is None or real.images is None:
        return
    h, w = (int(v) for v in real.images.shape[-2:])
    for m in (METRICS[name] for name in metrics if METRICS[name].same_size_min is not None):
        if min(h, w) < m.same_size_min:
            raise SaganError(f"{m.label} needs images of at least {m.same_size_min} px a side; "
                             f"the real ones ({real.description}) are {w}x{h}")
        for (gh, gw), example in gen_source.sizes().items():
            if (gh, gw) != (h, w):
                raise SaganError(f"{m.label} compares images of one size: the generated ones include {gw}x{gh} "
                                 f"images (first: {example}), the real ones ({real.description}) are {w}x{h}")


def check_counts(metrics: tuple[str, ...], num_gen: int, real: Real | None) -> None:
    has_count = real is not None and (real.stats is None or real.stats.features is not None)
    for m in (METRICS[name] for name in metrics):
        if num_gen < m.min_gen:
            raise SaganError(f"{m.display} needs at least {m.min_gen} generated images, got {num_gen}")
        if m.needs_real and has_count and real.num_real < m.min_real:
            raise SaganError(f"{m.display} needs at least {m.min_real} real images, got {real.num_real}")


def protocol(weights_sha256: str | None, ctx: Context) -> dict:
    """How every number was made: the common steps, then each metric's line (every metric that has one).
    Without the Inception (``weights_sha256`` None) the common steps are the images' only."""
    from sagan_cli.metrics.stats_cache import PROTOCOL

    lines = {m.name: m.protocol(ctx) for m in METRICS.values() if m.protocol is not None}
    images = "uint8 (generated: round((x+1)*127.5))"
    common = {"images": images} if weights_sha256 is None else {
        "id": PROTOCOL,
        "network": "FID Inception-v3 (TensorFlow graph 2015-12-05)",
        "weights_sha256": weights_sha256,
        "images": images,
        "resize": "TF1 bilinear to 299x299 (src = dst*in/out, no half-pixel offset)",
        "normalisation": "(x-128)/128",
        "features": "pool3, 2048-d; statistics in float64",
    }
    return {**common, **{name: line for name, line in lines.items() if line is not None}}


def _listed(names: list[str]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def check_real_stats(real: Real, need_features: bool, weights_sha: str, warn) -> None:
    from sagan_cli.metrics import stats_cache

    note = stats_cache.check_compatible(real.stats, real.stats_file, weights_sha)
    if note:
        warn(note)
    if need_features and real.stats.features is None:
        users = [m.label for m in METRICS.values() if m.needs_real_features]
        raise SaganError(f"--real-stats {real.stats_file} holds no real features, which {_listed(users)} "
                         f"need{'s' if len(users) == 1 else ''}; pass --data DIR instead")


def real_statistics(net, real: Real, need_features: bool, weights_sha: str, req: Request, device, console,
                    say, warn, taps=()):
    """(mu, sigma, features or None, where the statistics came from, cache hit?). The real images are fed
    to ``taps`` (the image metrics' accumulators) on the way, or, on a cache hit, in a pass of their own."""
    from sagan_cli.metrics import stats_cache
    from sagan_cli.metrics.features import extract
    from sagan_cli.metrics.fid import statistics
    from sagan_cli.metrics.sources import ArraySource

    if real.stats is not None:  # checked by check_real_stats already
        return real.stats.mu, real.stats.sigma, real.stats.features, str(real.stats_file), False
    meta = stats_cache.cache_meta(real.fingerprint, weights_sha, real.num_real, real.count)
    path = stats_cache.cache_path(meta)
    if path.is_file():
        try:
            cached = stats_cache.load_stats(path, flag="cached statistics")
            stats_cache.check_compatible(cached, path, weights_sha)
        except SaganError as exc:
            warn(f"ignoring a damaged statistics cache file ({exc}); recomputing")
        else:
            if not need_features or cached.features is not None:
                say(f"real statistics: cache hit {path}")
                if taps:
                    extract(None, ArraySource(real.images, real.indices), device, req.batch, console=console,
                            label=pass_label(False, taps, "real"), taps=taps)
                return cached.mu, cached.sigma, cached.features, str(path), True
    feats = extract(net, ArraySource(real.images, real.indices), device, req.batch, console=console,
                    label=pass_label(True, taps, "real"), taps=taps).pool3
    mu, sigma = statistics(feats)
    keep = feats if need_features else None
    try:
        stats_cache.save_stats(path, stats_cache.RealStats(mu, sigma, meta, keep))
        say(f"real statistics: computed from {real.description}, cached in {path}")
    except OSError as exc:
        warn(f"could not write the statistics cache {path} ({exc.strerror or exc}); continuing without it")
    return mu, sigma, keep, str(path), False


def pass_label(inception: bool, taps, side: str) -> str:
    """The progress label of a pass over one side's images: what it feeds ("inception+swd (real)")."""
    names = (["inception"] if inception else []) + [getattr(t, "metric", "images") for t in taps]
    return f"{'+'.join(names) or 'images'} ({side})"


def _taps(accumulators: dict, side: str) -> list:
    """One callable per accumulator that feeds it the batches of ``side``."""
    import functools

    taps = []
    for name, acc in accumulators.items():
        tap = functools.partial(acc.feed, side)
        tap.metric = name
        taps.append(tap)
    return taps


def compute(metrics, gen, real: RealSide | None, ctx: Context) -> dict:
    """Each chosen metric's record keys, in table order."""
    out: dict = {}
    for name in metrics:
        out.update(METRICS[name].compute(gen, real, ctx))
    return out


def evaluate(req: Request, console, say: Callable[[str], None], warn: Callable[[str], None]) -> tuple[dict, Path | None]:
    """Run the evaluation; returns (result record, run directory to log into or None)."""
    record, _, run_dir = score(req, console, say, warn)
    return record, run_dir


def score(req: Request, console, say: Callable[[str], None], warn: Callable[[str], None]) -> tuple[dict, dict, Path | None]:
    """(result record, the metrics' own keys and values in it, run directory or None)."""
    from sagan_cli.util.device import describe, resolve_device
    from sagan_cli.metrics.features import extract
    from sagan_cli.metrics.sources import ArraySource

    start = time.monotonic()
    check_conflicts(req)
    metrics = chosen(req.metrics)
    entries = [METRICS[m] for m in metrics]
    inception = any(m.needs_inception for m in entries)
    device = resolve_device(req.device)
    weights_path = find_weights(req) if inception else None
    gen_source, info, run_dir, state = open_generated(req, device, warn)
    if info.get("labels") == "uniform":  # a conditional checkpoint without --class
        say("classes drawn uniformly, one per seed from its own seeded stream (as `sagan sample`; --class K|NAME for one)")
    need_real = any(m.needs_real for m in entries)
    real = open_real(req, state, warn, getattr(gen_source, "klass", None)) if need_real else None
    gen_source, info = fit_generated(req, gen_source, info, metrics, real)
    check_sizes(state, real)
    check_counts(metrics, len(gen_source), real)
    check_image_sizes(metrics, gen_source, real)
    accumulators = {m.name: m.accumulator(len(gen_source), real.num_real if real else 0, device)
                    for m in entries if m.accumulator is not None}
    ctx = Context(device=device, fid_sqrtm=req.fid_sqrtm, warn=warn, accumulators=accumulators)
    record: dict = {"kind": "eval", "time": round(time.time(), 3)}
    record.update(info)
    record.update(num_gen=len(gen_source), metrics=list(metrics))
    net = weights_sha = None
    if inception:
        weights_path, weights_sha, net = _inception(req, weights_path, real, entries, device, console, say, warn)
    real_side = None
    real_taps = _taps(accumulators, "real")
    if real is not None and inception:
        real_mu, real_sigma, real_feats, stats_path, hit = real_statistics(
            net, real, any(m.needs_real_features for m in entries), weights_sha, req, device, console, say, warn,
            real_taps)
        real_side = RealSide(real_mu, real_sigma, real_feats)
        record.update(real=real.description, num_real=real.num_real or None, real_stats=stats_path,
                      real_stats_cached=hit)
    elif real is not None:  # the images only (no --real-stats here: check_conflicts)
        extract(None, ArraySource(real.images, real.indices), device, req.batch, console=console,
                label=pass_label(False, real_taps, "real"), taps=real_taps)
        record.update(real=real.description, num_real=real.num_real)
    gen_taps = _taps(accumulators, "generated")
    gen = extract(net, gen_source, device, req.batch, want_logits=any(m.needs_logits for m in entries),
                  console=console, label=pass_label(inception, gen_taps, "generated"), taps=gen_taps)
    values = compute(metrics, gen, real_side, ctx)
    record.update(values)
    if inception:
        record["weights"] = str(weights_path)
    record.update(protocol=protocol(weights_sha, ctx), device=describe(device), seconds=round(time.monotonic() - start, 2))
    return record, values, run_dir


def _inception(req: Request, weights_path: Path | None, real: Real | None, entries, device, console, say, warn):
    """(weights file, its sha256, the network): downloaded first if it is to be (only once every input was checked)."""
    from sagan_cli.metrics.weights import load_inception, sha256_of

    if weights_path is None:  # only now: a typo in the arguments should not cost a 100 MB download
        import contextlib
        import sys

        from sagan_cli.metrics.weights import download_weights

        quiet = contextlib.redirect_stdout(sys.stderr) if console.stderr else contextlib.nullcontext()
        with quiet:  # with --json, stdout carries the JSON only (the download bar prints to stdout)
            weights_path = download_weights(say)
    weights_sha = sha256_of(weights_path)
    if real is not None and real.stats is not None:
        check_real_stats(real, any(m.needs_real_features for m in entries), weights_sha, warn)
    return weights_path, weights_sha, load_inception(weights_path, device)
