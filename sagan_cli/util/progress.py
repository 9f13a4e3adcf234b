"""Progress on the console, for every long task (prepare, unpack, download, Inception features, training):
a Rich bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time

PLAIN_EVERY_S = 10.0


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def duration(seconds: float) -> str:
    """An estimate for people: '40 s', '12 min', '3.5 h', '2.1 days'."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Reporter:
    """Counts ``done`` out of ``total`` (``total`` may be None for unknown sizes).

    When the console is not a terminal a plain line is printed every ``PLAIN_EVERY_S`` seconds, unless
    ``plain_lines`` is false (a caller that prints its own lines, as training does at each log step)."""

    def __init__(self, label: str, total: int | None, done: int = 0, unit: str = "img", console=None,
                 plain_lines: bool = True):
        from rich.console import Console

        self.label, self.total, self.done, self.unit = label, total, done, unit
        self.note = ""
        self.plain_lines = plain_lines
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._start, self._start_done = time.monotonic(), done
        self._last_line = self._start
        self._progress = None
        if self.console.is_terminal:
            from rich import progress as rp

            columns = [rp.TextColumn(f"[bold]{label}"), rp.BarColumn()]
            if unit == "bytes":
                columns += [rp.DownloadColumn(), rp.TransferSpeedColumn()]
            else:
                columns += [rp.MofNCompleteColumn(), rp.TextColumn("{task.fields[rate]}")]
            columns += [rp.TimeRemainingColumn(), rp.TextColumn("{task.fields[note]}")]
            self._progress = rp.Progress(*columns, console=self.console, transient=False)
            self._task = self._progress.add_task(label, total=total, completed=done, note="", rate="")
            self._progress.start()

    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0

    def _amount(self, n: float) -> str:
        return _fmt_bytes(n) if self.unit == "bytes" else f"{int(n)}"

    def update(self, done: int, note: str | None = None) -> None:
        self.done = done
        if note is not None:
            self.note = note
        now = time.monotonic()
        if self._progress is not None:
            rate = f"{self.rate():.0f} {self.unit}/s" if self.unit != "bytes" else ""
            self._progress.update(self._task, total=self.total, completed=done, note=self.note, rate=rate)
        elif self.plain_lines and now - self._last_line >= PLAIN_EVERY_S:
            self._last_line = now
            self.console.print(self.line(), markup=False)

    @property
    def is_bar(self) -> bool:
        """Whether a live bar is drawn (the console is a terminal)."""
        return self._progress is not None

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def line(self) -> str:
        of = f"/{self._amount(self.total)}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = f"{_fmt_bytes(self.rate())}/s" if self.unit == "bytes" else f"{self.rate():.0f} {self.unit}/s"
        note = f", {self.note}" if self.note else ""
        return f"{self.label}: {self._amount(self.done)}{of}{pct}, {rate}{note}"

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
