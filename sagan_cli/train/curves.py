"""A run's training curves from its ``metrics.jsonl``, drawn with matplotlib.

``sagan plot`` draws the curves of one run or several (overlaid, one colour per run); the trainer redraws
``<run>/curves.png`` at every sample step through ``refresh``, which never stops training (a failure is one
warning line). One implementation serves both. (The timelapse of the sample grids: ``timelapse.py``.)

``metrics.jsonl`` is read line by line: a torn last line (a killed run), a line that is not a JSON object
and a line of another kind than training or ``"kind": "eval"`` are skipped. matplotlib is imported on the
first drawing, through its object API with the Agg canvas: no pyplot state, no display, no backend switch.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sagan_cli.util.errors import SaganError

CURVES = "curves.png"
METRICS = "metrics.jsonl"
MAX_POINTS = 2000  # points drawn per series; a longer series is averaged in that many bins
DPI = 100
PANEL_W, PANEL_H = 4.6, 2.0  # inches (at DPI: a 2-column page of four panels is about 1100×640 px)


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[tuple[str, str], ...]  # (record key, label); an empty tuple: every gamma/<layer> key
    source: str = "train"  # "train" records or "eval" records


PANELS = (
    Panel("loss", (("d_loss", "D loss"), ("g_loss", "G loss"))),
    Panel("D output (mean logit)", (("d_real", "D(real)"), ("d_fake", "D(fake)"))),
    Panel("attention γ", ()),
    Panel("images/s", (("img_per_s", "images/s"),)),
    Panel("FID", (("fid", "FID"),), "eval"),
    Panel("KID", (("kid_mean", "KID"),), "eval"),
    Panel("IS", (("is_mean", "IS"),), "eval"),
    Panel("precision / recall", (("precision", "precision"), ("recall", "recall")), "eval"),
    Panel("SWD ×1e3", (("swd", "SWD"), ("swd_floor", "real-vs-real floor")), "eval"),
)
X_AXES = {"step": "step", "images": "images_seen"}  # --x: the record key of the horizontal axis


@dataclass
class RunRecords:
    """One run's metrics: training records as columns (key -> float array by row, rows in step order, the last
    record of a step kept, NaN where a record lacks the key) and the evaluation records."""

    name: str
    columns: dict = field(default_factory=dict)
    evals: list[dict] = field(default_factory=list)  # "kind": "eval" records by step (file order within one)

    @property
    def rows(self) -> int:
        return len(self.columns.get("step", ()))

    @property
    def last_step(self) -> int:
        return int(self.columns["step"][-1])


@dataclass
class _Reading:
    """What was read of one file so far: training values as columns (``array('d')``: 8 bytes a value, however
    long the run), eval records, the offset after the last whole line, whether steps only grew, and the file's
    identity (a file replaced or cut shorter is read again from the start)."""

    ident: tuple = ()
    offset: int = 0
    cols: dict = field(default_factory=dict)
    rows: int = 0
    ordered: bool = True
    evals: list = field(default_factory=list)

    def add(self, rec: dict) -> None:
        from array import array

        if self.rows and rec["step"] <= self.cols["step"][-1]:
            self.ordered = False
        for key, value in rec.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                col = self.cols.get(key)
                if col is None:
                    col = self.cols[key] = array("d", [math.nan] * self.rows)
                col.append(value)
        self.rows += 1
        for col in self.cols.values():
            if len(col) < self.rows:
                col.append(math.nan)

    def records(self, name: str) -> RunRecords:
        import numpy as np

        cols = {k: np.frombuffer(v, float).copy() for k, v in self.cols.items()}
        if not self.ordered:  # a step logged twice or out of order: the last record of each step, by step
            steps = cols["step"][::-1]
            _, first = np.unique(steps, return_index=True)
            keep = len(steps) - 1 - first
            cols = {k: v[keep] for k, v in cols.items()}
        return RunRecords(name, cols, sorted(self.evals, key=lambda r: r["step"]))


_READINGS: dict[Path, _Reading] = {}  # refresh's incremental reads: the trainer's file only grows while it trains


def read_metrics(path: str | Path, name: str | None = None, incremental: bool = False) -> RunRecords:
    """The records of one ``metrics.jsonl``, skipping torn and foreign lines. ``incremental``: read only what
    was appended since the last such call for this file (what the trainer's refresh at every sample step does)."""
    import os

    path = Path(path)
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        state = _READINGS.get(path) if incremental else None
        if state is None or state.ident != ident or st.st_size < state.offset:
            state = _Reading(ident)
        fh.seek(state.offset)
        data = fh.read()
    whole = data.rfind(b"\n") + 1  # a torn last line is read again once it is complete
    for line in data[:whole].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            continue
        if "kind" not in rec:
            state.add(rec)
        elif rec["kind"] == "eval":
            state.evals.append(rec)
    state.offset += whole
    if incremental:
        _READINGS[path] = state
    return state.records(name or path.parent.name)


def resolve_runs(values: list[str], root: str | Path) -> list[Path]:
    """RUN arguments of ``sagan plot``: run directories; 'latest' or none at all: the newest run under ``root``
    that has a metrics.jsonl. Each problem is a one-line SaganError."""
    from sagan_cli.train.runs import run_dirs

    found: list[Path] = []
    for value in values or ["latest"]:
        if value == "latest":
            runs = [r for r in run_dirs(root) if (r / METRICS).is_file()]
            if not runs:
                raise SaganError(f"no run found under {root}/ (looked for */{METRICS}); train first or pass a run directory")
            path = runs[-1]
        else:
            path = Path(value)
            if path.is_file() and path.name == METRICS:
                path = path.parent
            if not path.exists():
                raise SaganError(f"RUN {value}: no such run directory")
            if not path.is_dir() or not (path / METRICS).is_file():
                raise SaganError(f"RUN {value}: not a run directory (it holds no {METRICS})")
        if path not in found:
            found.append(path)
    return found


def load_runs(paths: list[Path]) -> list[RunRecords]:
    """Every run's records, named by its directory (by its path where two names agree); a run without one
    training record is an error."""
    names = [p.name for p in paths]
    runs = []
    for path, name in zip(paths, names):
        try:
            run = read_metrics(path / METRICS, name if names.count(name) == 1 else str(path))
        except OSError as exc:
            raise SaganError(f"{path / METRICS}: cannot read it ({exc.strerror or exc})") from None
        if not run.rows:
            raise SaganError(f"{path / METRICS} holds no training record yet (train writes one every --log-every steps)")
        runs.append(run)
    return runs


def _series(run: RunRecords, source: str, key: str, xkey: str):
    """(x, y) arrays of ``key`` where it has a value; a training series longer than MAX_POINTS is averaged in
    bins (a long run's curve costs as little to draw as a short one's, and its noise is smoothed, not aliased)."""
    import numpy as np

    if source == "eval":
        pts = np.array([(r[xkey], r[key]) for r in run.evals
                        if isinstance(r.get(key), (int, float)) and isinstance(r.get(xkey), (int, float))], float)
        return (pts[:, 0], pts[:, 1]) if len(pts) else ([], [])
    if key not in run.columns or xkey not in run.columns:
        return [], []
    xs, ys = run.columns[xkey], run.columns[key]
    if len(xs) > MAX_POINTS:
        size = math.ceil(len(xs) / MAX_POINTS)
        pad = -len(xs) % size  # the last bin is shorter: NaN-padded, and the means ignore NaN
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bin of NaN only (a key missing there) stays NaN
            xs, ys = (np.nanmean(np.append(a, [np.nan] * pad).reshape(-1, size), axis=1) for a in (xs, ys))
    return xs, ys


def _panel_series(panel: Panel, run: RunRecords) -> list[tuple[str, str]]:
    if panel.series:
        return list(panel.series)

    def order(key: str):  # as attn-map lists layers: G coarse to fine, then D fine to coarse
        net, res = key[6:7], int(key[7:]) if key[7:].isdigit() else 0
        return (net != "g", res if net == "g" else -res, key)

    return [(k, k[6:]) for k in sorted((k for k in run.columns if k.startswith("gamma/")), key=order)]


def _seen(run: RunRecords) -> str:
    """'10.7k images seen' at the run's last record ('' where the records do not count them)."""
    seen = run.columns.get("images_seen")
    if seen is None or not math.isfinite(seen[-1]):
        return ""
    n = float(seen[-1])
    text = next((f"{n / d:.3g}{u}" for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if n >= d), f"{n:.0f}")
    return f"{text} images seen"


def figure(runs: list[RunRecords], x: str = "step"):
    """A matplotlib Figure of every panel with data in any run (Agg canvas attached)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, MaxNLocator

    xkey = X_AXES[x]
    drawn = []
    for panel in PANELS:
        per_run = []
        for run in runs:
            lines = [(label, *_series(run, panel.source, key, xkey)) for key, label in _panel_series(panel, run)]
            per_run.append([ln for ln in lines if len(ln[1])])
        if any(per_run):
            drawn.append((panel, per_run))
    cols = 1 if len(drawn) == 1 else 2
    rows = math.ceil(len(drawn) / cols)
    # Margins in inches, fixed: matplotlib's automatic layouts (and a secondary axis) cost more than the drawing
    head = 0.45 if len(runs) == 1 else 0.3 + 0.25 * math.ceil(len(runs) / 3)
    width, height = cols * PANEL_W + (cols - 1) * 0.75 + 0.85, rows * PANEL_H + (rows - 1) * 0.8 + head + 0.5
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=0.65 / width, right=1 - 0.2 / width, top=1 - head / height, bottom=0.5 / height,
        wspace=0.75 / PANEL_W, hspace=0.8 / PANEL_H)).ravel()
    colours = [f"C{i}" for i in range(10)]
    styles = ["-", "--", ":", "-."]
    for ax, (panel, per_run) in zip(axes, drawn):
        labels: list[str] = []
        for r, lines in enumerate(per_run):
            for label, xs, ys in lines:
                if label not in labels:
                    labels.append(label)
                s = labels.index(label)
                single = len(runs) == 1
                colour = colours[s % 10] if single else colours[r % 10]
                style = "-" if single else styles[s % len(styles)]
                marker = "o" if panel.source == "eval" or len(xs) == 1 else None
                ax.plot(xs, ys, style, color=colour, marker=marker, markersize=3, linewidth=1.2,
                        label=label if single else None)
        if len(runs) > 1 and len(labels) > 1:  # the series by line style, in grey; the runs by colour below
            for s, label in enumerate(labels):
                ax.plot([], [], styles[s % len(styles)], color="0.35", label=label)
        if len(labels) > 1:
            ax.legend(fontsize=8, loc="best", frameon=False)
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.grid(True, linewidth=0.4, alpha=0.5)
        ax.tick_params(labelsize=8)
        lo, hi = ax.get_xlim()
        if hi - lo < 4:  # one record: whole steps around it, not 2.88, 2.94 ...
            ax.set_xlim((lo + hi) / 2 - 2, (lo + hi) / 2 + 2)
        ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))  # few ticks: they are most of the drawing time
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("images seen" if x == "images" else "step", fontsize=8)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 1.5M, not 1.5 under a '1e6'
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    if len(runs) == 1:
        seen = _seen(runs[0])
        fig.suptitle(f"{runs[0].name} · step {runs[0].last_step}{' · ' + seen if seen else ''}", fontsize=11,
                     y=1 - 0.08 / height, va="top")
    else:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colours[r % 10], linewidth=2) for r in range(len(runs))]
        names = [f"{run.name} (step {run.last_step}{', ' + _seen(run) if _seen(run) else ''})" for run in runs]
        fig.legend(handles, names, loc="upper center",
                   bbox_to_anchor=(0.5, 1 - 0.02 / height), ncols=min(len(runs), 3), fontsize=9, frameon=False)
    return fig


def draw(runs: list[RunRecords], out: str | Path, x: str = "step", flag: str = "") -> Path:
    """Write the curves of ``runs`` as one PNG, atomically."""
    import io

    from sagan_cli.util.fsutil import atomic_open, write_error

    buf = io.BytesIO()
    figure(runs, x).savefig(buf, format="png")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(out) as fh:
            fh.write(buf.getvalue())
    except OSError as exc:
        raise write_error(out, exc, flag) from None
    return out


_unavailable: list[str] = []  # why refresh gave up for good (matplotlib missing): said once


def refresh(run_dir: str | Path, warn) -> Path | None:
    """Redraw ``<run>/curves.png`` from its metrics.jsonl once it holds two training records (a curve; a run
    shorter than two log steps pays nothing, not even matplotlib's import). Never raises: a failure is one
    ``warning:`` line through ``warn`` (matplotlib missing: once, then no more tries)."""
    if _unavailable:
        return None
    run_dir = Path(run_dir)
    try:
        run = read_metrics(run_dir / METRICS, incremental=True)
        if run.rows < 2:
            return None
        return draw([run], run_dir / CURVES)
    except ImportError as exc:
        _unavailable.append(str(exc))
        warn(f"warning: {CURVES} is not drawn ({exc}; pip install matplotlib); training goes on")
    except Exception as exc:  # noqa: BLE001 - a picture must never stop a training run
        warn(f"warning: {CURVES} not refreshed ({exc}); training goes on")
    return None
