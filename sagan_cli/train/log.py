"""Where training metrics go: metrics.jsonl, log.txt, optional TensorBoard, and the console.

On a terminal the console shows a Rich progress bar with the latest losses; when
stdout is not a terminal (CI, nohup, SLURM) it prints one plain line per log step.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import disk_full, why
from sagan_cli.train.metrics_file import trim_for_resume
from sagan_cli.util.progress import Reporter, duration


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def format_line(rec: dict) -> str:
    keys = ["d_loss", "g_loss", "d_real", "d_fake", "img_per_s"]
    parts = [f"step {rec['step']}/{rec['steps']}"] + [f"{k} {_fmt(rec[k])}" for k in keys if k in rec]
    gammas = [f"{k.split('/')[1]} {rec[k]:+.3f}" for k in rec if k.startswith("gamma/")]
    if gammas:
        parts.append("γ " + " ".join(gammas))
    return "  ".join(parts)


def require_tensorboard() -> None:
    """``--tensorboard`` without the package is refused before a run starts (it is not a dependency)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise SaganError("--tensorboard needs the tensorboard package: pip install tensorboard (or drop --tensorboard)")


class LogWriteError(SaganError):
    """metrics.jsonl or log.txt could not be written; the Trainer adds which checkpoint is intact."""

    def __init__(self, path: Path, exc: OSError, doing: str = "appending to", outcome: str = "training stopped"):
        reason = "disk full" if disk_full(exc) else why(path, exc)
        super().__init__(f"{reason} while {doing} {path}; {outcome}")
        self.path = path


class TrainLogger:
    def __init__(self, run_dir: Path, total_steps: int, start_step: int, tensorboard: bool, console=None):
        from rich.console import Console

        self.run_dir = run_dir
        self.console = console or Console(soft_wrap=True, highlight=False)
        self.total, self.start = total_steps, start_step
        self._metrics_path, self._log_path = run_dir / "metrics.jsonl", run_dir / "log.txt"
        try:  # a resumed run: what the killed run logged past its checkpoint goes
            trim_for_resume(self._metrics_path, start_step)
        except OSError as exc:
            raise LogWriteError(self._metrics_path, exc, "trimming", "the run did not start") from None
        with self._writing(self._metrics_path):
            self._metrics = open(self._metrics_path, "a", encoding="utf-8")
        with self._writing(self._log_path):
            self._log = open(self._log_path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            require_tensorboard()
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        # a bar on a terminal; elsewhere log() prints one plain line per log step itself
        self._progress = Reporter("train", total_steps, done=start_step, unit="step", console=self.console,
                                  plain_lines=False)
        self._opened, self._estimated = time.monotonic(), False

    def message(self, text: str) -> None:
        """A line for the console and log.txt (run start, checkpoints, samples, stop)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._writing(self._log_path):
            self._log.write(f"{stamp} {text}\n")
            self._log.flush()
        self.console.print(text, markup=False, highlight=False)

    def advance(self, step: int) -> None:
        self._progress.update(step)

    def log(self, rec: dict) -> None:
        rec = {"time": round(time.time(), 3), **rec}
        with self._writing(self._metrics_path):
            self._metrics.write(json.dumps(rec) + "\n")
            self._metrics.flush()
        line = format_line(rec)
        with self._writing(self._log_path):
            self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            self._log.flush()
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("step", "steps", "time") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, rec["step"])
            self._tb.flush()
        if self._progress.is_bar:
            stats = "  ".join(f"{k} {_fmt(rec[k])}" for k in ("d_loss", "g_loss", "img_per_s") if k in rec)
            self._progress.update(rec["step"], note=stats)
        else:
            self.console.print(line, markup=False, highlight=False)
        if not self._estimated:
            self._estimated = True
            self._estimate(rec["step"])

    def log_eval(self, rec: dict, line: str) -> None:
        """An evaluation during training: its record in metrics.jsonl (and TensorBoard, under eval/), ``line``
        on the console and in log.txt."""
        rec = {"time": round(time.time(), 3), **rec}
        with self._writing(self._metrics_path):
            self._metrics.write(json.dumps(rec) + "\n")
            self._metrics.flush()
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("step", "time", "images_seen", "during_training") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"eval/{k}", v, rec["step"])
            self._tb.flush()
        self.message(line)

    def _estimate(self, step: int) -> None:
        """Once, at the first log step: how long the rest takes at the rate so far (start-up included)."""
        done, left = step - self.start, self.total - step
        if done <= 0 or left <= 0:
            return
        per_step = (time.monotonic() - self._opened) / done
        end = time.strftime("%H:%M", time.localtime(time.time() + per_step * left))
        self.message(f"expected: about {duration(per_step * left)} more for the remaining {left} steps at the "
                     f"rate so far ({1 / per_step:.3g} steps/s), done around {end}")

    def close(self) -> None:
        if getattr(self, "_progress", None) is not None:
            self._progress.close()
        if self._tb is not None:
            self._tb.close()
        for fh in (getattr(self, "_metrics", None), getattr(self, "_log", None)):
            if fh is not None:
                with contextlib.suppress(OSError):  # what failed was already reported
                    fh.close()

    @contextlib.contextmanager
    def _writing(self, path: Path):
        try:
            yield
        except OSError as exc:
            raise LogWriteError(path, exc) from None


class NullLogger:
    """What ranks other than 0 log to: nothing (rank 0 writes for the whole job)."""

    def message(self, text: str) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def log(self, rec: dict) -> None:
        pass

    def close(self) -> None:
        pass
