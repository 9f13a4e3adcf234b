"""The metrics `sagan evaluate` knows: one entry each, read by the evaluation, the report and the CLI.

An entry says how the metric is chosen (its flag and help), what it needs (minimum image counts, the
real side, real features, logits), what it is computed from (the Inception features, or the images
themselves: ``needs_inception``), how it is computed, the protocol line that says how it was computed,
and the rows it puts in the printed table. Adding a metric is one entry in
``METRICS``: it gets its ``--flag`` on `sagan evaluate`, its count check, its keys in the JSON record
and in metrics.jsonl, its rows and its protocol line. The record, the table and the protocol lines
list the chosen metrics in the order of ``METRICS``.

No NumPy or torch at module level: the CLI builds its flags from this table when `sagan --help` runs.
The maths is imported inside the ``compute`` and ``protocol`` functions. The numbers the flags' help and
the count checks state (10 IS splits, k=3, 100 KID subsets of up to 1000) are written here as well as
in isc.py / prc.py / kid.py / swd.py; tests/test_metrics_table.py checks that they agree.

A metric computed from the images (``needs_inception=False``, e.g. SWD) needs no Inception weights: when
no chosen metric needs them, evaluate neither looks for the weights nor runs the network. Such a metric
has an ``accumulator``: evaluate makes one per run, feeds it every generated and real uint8 batch as the
sources yield them, and puts it in ``Context.accumulators`` under the metric's name for its ``compute``
and ``protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

IS_SPLITS = 10  # isc.SPLITS
PR_K = 3  # prc.K
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # kid.SUBSETS, kid.SUBSET_SIZE
SWD_MAX_IMAGES, SWD_MIN_SIZE = 16384, 16  # swd.MAX_IMAGES, swd.MIN_RES


@dataclass(frozen=True)
class RealSide:
    """The real side as the metrics see it: mean, covariance, features (None unless some metric needs them)."""
    mu: object
    sigma: object
    features: object = None


@dataclass(frozen=True)
class Context:
    """What a metric's compute may use besides the features: the device they were made on, the options."""
    device: object  # torch.device
    fid_sqrtm: bool = False
    warn: Callable[[str], None] = lambda text: None
    accumulators: dict = field(default_factory=dict)  # metric name -> its accumulator, fed both sides' images


@dataclass(frozen=True)
class Metric:
    name: str  # the key in ``METRICS`` and in the record's "metrics" list
    flag: str  # `sagan evaluate FLAG` chooses it
    help: str  # the flag's help text
    label: str  # its name in the protocol lines ("IS: ...")
    display: str  # its name in messages ("IS (10 splits) needs at least ...")
    # (generated Features, real side, context) -> record keys; the Features' arrays are None when no chosen
    # metric needs the Inception, the real side is None when no chosen metric needs Inception statistics
    compute: Callable[[object, RealSide | None, Context], dict]
    rows: Callable[[dict], list[tuple[str, str]]]  # record -> (label, formatted value) rows of the table
    protocol: Callable[[Context], str | None] | None = None  # record["protocol"][name]; None: no line
    min_gen: int = 2
    min_real: int = 2  # checked when the real side has a count (not for a pytorch-fid statistics file)
    needs_real: bool = True
    needs_real_features: bool = False  # the real pool3 features, not only mu and sigma
    needs_logits: bool = False
    needs_inception: bool = True  # computed from the Inception features; False: from the images themselves
    # (generated count, real count, device) -> an object with feed(side, batch): side "generated" or "real",
    # batch the next uint8 B×3×H×W CPU tensor of that side, in order (for a metric computed from the images)
    accumulator: Callable[[int, int, object], object] | None = None
    same_size_min: int | None = None  # generated and real images of one size, at least this many px a side
    # generated images it uses when -n is not given, from the real count (None: not known); None: 50 000.
    # A checkpoint generates the most any chosen metric uses
    default_num: Callable[[int | None], int] | None = None
    headline: str = ""  # the record key that ranks runs (`sagan train --eval-metrics`' best.pt); default: name
    lower_is_better: bool = True  # which way the headline value improves

    @property
    def param(self) -> str:
        """The name of its flag's parameter in the CLI command (``is`` is a Python keyword)."""
        return f"metric_{self.name}"


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


# ------------------------------------------------------------------------------------------- FID
def _fid(gen, real: RealSide, ctx: Context) -> dict:
    from sagan_cli.metrics import fid

    mu, sigma = fid.statistics(gen.pool3)
    if not ctx.fid_sqrtm:
        return {"fid": fid.frechet_distance(mu, sigma, real.mu, real.sigma)}
    from sagan_cli.util.errors import SaganError

    try:
        return {"fid": fid.frechet_distance_sqrtm(mu, sigma, real.mu, real.sigma, warn=ctx.warn)}
    except fid.ImaginaryComponent as exc:
        raise SaganError(f"--fid-sqrtm: {exc}; without --fid-sqrtm the trace term comes from a symmetric "
                         "eigenvalue problem, which has no imaginary part") from None


def _fid_protocol(ctx: Context) -> str | None:
    if not ctx.fid_sqrtm:
        return None  # the default path; docs/evaluate.md describes it
    import scipy

    from sagan_cli.metrics.fid import SQRTM_EPS

    return (f"trace term tr sqrtm(sigma_gen sigma_real) by scipy.linalg.sqrtm (SciPy {scipy.__version__}), "
            f"as pytorch-fid computes it: real part, {SQRTM_EPS:g} added to both diagonals if the product is singular")


# -------------------------------------------------------------------------------------------- IS
def _is(gen, real, ctx: Context) -> dict:
    from sagan_cli.metrics.isc import inception_score

    mean, std = inception_score(gen.logits)
    return {"is_mean": mean, "is_std": std}


def _is_protocol(ctx: Context) -> str:
    from sagan_cli.metrics import isc

    return f"logits without bias, {isc.SPLITS} splits, population std, shuffle seed {isc.SEED}"


# ------------------------------------------------------------------------------------------- KID
def _kid(gen, real: RealSide, ctx: Context) -> dict:
    from sagan_cli.metrics.kid import kernel_inception_distance

    mean, std = kernel_inception_distance(gen.pool3, real.features)
    return {"kid_mean": mean, "kid_std": std}


def _kid_protocol(ctx: Context) -> str:
    from sagan_cli.metrics import kid

    return f"{kid.SUBSETS} subsets of min({kid.SUBSET_SIZE}, n), kernel (x.y/d+1)^3, seed {kid.SEED}"


# ------------------------------------------------------------------------------------------- PR
def _pr(gen, real: RealSide, ctx: Context) -> dict:
    from sagan_cli.metrics.prc import precision_recall

    # float64 distances: on CUDA where the features were made, otherwise on the CPU (MPS has no float64)
    device = ctx.device if getattr(ctx.device, "type", None) == "cuda" else "cpu"
    precision, recall = precision_recall(gen.pool3, real.features, device=device)
    return {"precision": precision, "recall": recall}


def _pr_protocol(ctx: Context) -> str:
    from sagan_cli.metrics import prc

    return f"k={prc.K} nearest neighbours (Kynkaanniemi et al. 2019)"


# ------------------------------------------------------------------------------------------- SWD
def _swd_accumulator(num_gen: int, num_real: int, device):
    from sagan_cli.metrics.swd import SWDAccumulator

    return SWDAccumulator(num_gen, num_real, device)


def _swd(gen, real, ctx: Context) -> dict:
    from sagan_cli.metrics.features import full_float32

    with full_float32():  # no TF32 in the projections on CUDA
        return ctx.accumulators["swd"].result()


def _swd_protocol(ctx: Context) -> str | None:
    acc = ctx.accumulators.get("swd")
    return None if acc is None else acc.protocol()


def _swd_default_num(num_real: int | None) -> int:
    """SWD compares min(generated, real // 2, 16384) images per side: more generated ones go unused."""
    return SWD_MAX_IMAGES if num_real is None else max(2, min(SWD_MAX_IMAGES, num_real // 2))


def _swd_rows(r: dict) -> list[tuple[str, str]]:
    levels = sorted((int(k[4:]) for k in r if k.startswith("swd_") and k[4:].isdigit()), reverse=True)
    rows = [("SWD ×1e3 (avg)", f"{_fmt(r['swd'], 2)}  (real-vs-real floor {_fmt(r['swd_floor'], 2)})")]
    return rows + [(f"SWD ×1e3 ({res} px)", f"{_fmt(r[f'swd_{res}'], 2)}  (floor {_fmt(r[f'swd_floor_{res}'], 2)})")
                   for res in levels]


# ---------------------------------------------------------------------------------------- mirror
MIRROR_DEFAULT_NUM = 10000  # generated images when -n is not given: the mean's standard error is then ~1e-4


def _mirror_accumulator(num_gen: int, num_real: int, device):
    from sagan_cli.metrics.mirror import MirrorAccumulator

    return MirrorAccumulator(num_gen, num_real, device)


def _mirror(gen, real, ctx: Context) -> dict:
    return ctx.accumulators["mirror"].result()


def _mirror_protocol(ctx: Context) -> str | None:
    acc = ctx.accumulators.get("mirror")
    return None if acc is None else acc.protocol()


def _mirror_rows(r: dict) -> list[tuple[str, str]]:
    real = f"  (real images {_fmt(r['mirror_error_real'])})" if "mirror_error_real" in r else ""
    return [("mirror error", _fmt(r["mirror_error"]) + real)]


METRICS: dict[str, Metric] = {
    "fid": Metric(
        "fid", "--fid", "Fréchet Inception Distance (the default when no metric is chosen).", "FID", "FID",
        compute=_fid, rows=lambda r: [("FID", _fmt(r["fid"]))], protocol=_fid_protocol, headline="fid"),
    "is": Metric(
        "is", "--is", f"Inception Score ({IS_SPLITS} splits).", "IS", f"IS ({IS_SPLITS} splits)",
        compute=_is, rows=lambda r: [("IS", f"{_fmt(r['is_mean'])} ± {_fmt(r['is_std'])}")], protocol=_is_protocol,
        min_gen=IS_SPLITS, needs_real=False, needs_logits=True, headline="is_mean", lower_is_better=False),
    "kid": Metric(
        "kid", "--kid", f"Kernel Inception Distance ({KID_SUBSETS} subsets of up to {KID_SUBSET_SIZE}).", "KID", "KID",
        compute=_kid, rows=lambda r: [("KID", f"{r['kid_mean']:.6f} ± {r['kid_std']:.6f}")], protocol=_kid_protocol,
        needs_real_features=True, headline="kid_mean"),
    "pr": Metric(
        "pr", "--pr", f"Precision and recall (k={PR_K}).", "precision/recall", f"precision/recall (k={PR_K})",
        compute=_pr, rows=lambda r: [("precision", _fmt(r["precision"])), ("recall", _fmt(r["recall"]))],
        protocol=_pr_protocol, min_gen=PR_K + 1, min_real=PR_K + 1, needs_real_features=True, headline="precision",
        lower_is_better=False),
    "swd": Metric(
        "swd", "--swd", "Sliced Wasserstein distance (Karras et al. 2018) and its real-vs-real floor; no Inception weights.",
        "SWD",
        "SWD (with its real-vs-real floor)", compute=_swd, rows=_swd_rows, protocol=_swd_protocol,
        min_real=4, needs_inception=False, accumulator=_swd_accumulator, same_size_min=SWD_MIN_SIZE,
        default_num=_swd_default_num, headline="swd"),
    "mirror": Metric(
        "mirror", "--mirror", "Mirror error: mean |x - fliplr(x)| on [0, 1] pixels (0 for the synthetic data's "
        "mirrored scenes); no Inception weights.", "mirror error", "the mirror error",
        compute=_mirror, rows=_mirror_rows, protocol=_mirror_protocol,
        min_gen=1, needs_real=False, needs_inception=False, accumulator=_mirror_accumulator,
        default_num=lambda num_real: MIRROR_DEFAULT_NUM, headline="mirror_error"),
}
DEFAULT = ("fid",)  # what is computed when no metric is chosen


def chosen(names) -> tuple[str, ...]:
    """``names`` in table order (unknown names dropped); the default when none is left."""
    return tuple(m for m in METRICS if m in names) or DEFAULT
