"""The prepare pipeline: source entries → worker processes → one pre-allocated images.npy.

Workers decode chunks of entries in parallel; the parent writes their results in
order through small memmap windows, so memory stays flat however large the
source. Every ``COMMIT_EVERY_S`` seconds the written rows are flushed and then
``progress.json`` (entries consumed, rows written, skip records) is replaced
atomically; a re-run of the same command continues from there. ``meta.json``
(``"complete": true``) is written last, after the file is trimmed and synced.

A source with ``classes`` (names; its ``class_of(item)`` gives an entry's class id, in this process) makes
a labelled dataset: ``labels.npy`` is written beside images.npy, row for row, committed and resumed
with it (``npyfile.LabelWriter``), and meta.json records the classes and images per class.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from sagan_cli.data.prepare import npyfile
from sagan_cli.data.prepare import state as outdir
from sagan_cli.data.dataset import IMAGES, LABELS, base_meta, class_fields, refuse_pickled, with_labels, write_meta
from sagan_cli.data.prepare.imageops import TOO_SMALL
from sagan_cli.data.prepare.source import Source
from sagan_cli.data.prepare.worker import Transform, process_chunk, worker_init
from sagan_cli.util.errors import EXIT_INTERRUPTED, SaganError
from sagan_cli.util.fsutil import disk_full, why

COMMIT_EVERY_S = 2.0
MAX_SKIP_RECORDS = 100_000
PREVIEW_IMAGES = 64


@dataclass
class Options:
    imsize: int = 64
    crop: str | None = "center"
    resample: str | None = "lanczos"
    max_images: int | None = None
    workers: int = 1
    force: bool = False
    preview: bool = False
    min_size: int | None = None  # skip decoded images whose short side is under this (0/None keeps all)


@dataclass
class Outcome:
    out: Path
    count: int
    skipped: int
    small: int = 0  # of the skipped: images under --min-size
    already: bool = False
    resumed_from: int = 0
    elapsed_s: float = 0.0
    workers: int = 0
    preview: Path | None = None
    classes: list[str] | None = None  # a labelled dataset's class names, with
    class_counts: list[int] | None = None  # its images per class

    @property
    def rate(self) -> float:
        return (self.count - self.resumed_from) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _pool_context():
    """fork where it is safe — Linux, no other thread running, no torch loaded; the
    pool is started before the parent opens the lmdb — else forkserver (or spawn).
    fork saves each worker re-importing NumPy/Pillow (~0.1 s) and runs a little faster."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and threading.active_count() == 1 and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ready() -> None:
    """No-op task: submitting it starts the pool's processes."""


class Decoder:
    """Decodes chunks of entries in order: in this process (``workers == 1``) or in a pool.

    Use as a context manager and enter it before starting any thread (the progress
    bar): the pool's processes are created on entry, while the parent holds no lmdb
    handle (sources open one only while reading a batch of keys), so nothing of the
    kind is ever shared with or pickled to a worker."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def __enter__(self) -> "Decoder":
        if self.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=_pool_context(), initializer=worker_init)
            self._wait(self.pool.submit(_ready))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    @staticmethod
    def _wait(future):
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            raise SaganError("a worker process died (out of memory?); re-run the same command to resume, "
                             "perhaps with fewer --workers") from None

    def run(self, source: Source, transform: Transform, start: int, position=None) -> Iterator[tuple[list, tuple]]:
        """(chunk, (images, skips)) for consecutive chunks from entry ``start``, in order."""
        chunks = _chunks(source.items(start, position), source.chunk_size)
        if self.pool is None:
            for chunk in chunks:
                yield chunk, process_chunk(source.reader, transform, chunk)
            return
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, self.pool.submit(process_chunk, source.reader, transform, chunk)))
            if len(pending) >= 4 * self.workers:
                chunk, fut = pending.popleft()
                yield chunk, self._wait(fut)
        while pending:
            chunk, fut = pending.popleft()
            yield chunk, self._wait(fut)


def _take(n_entries: int, images: np.ndarray, skips: list, need: int) -> tuple[int, np.ndarray, list]:
    """Cut a chunk's result right after its ``need``-th good image (for --max-images)."""
    if len(images) <= need:
        return n_entries, images, skips
    bad = {pos for pos, _, _ in skips}
    good = [p for p in range(n_entries) if p not in bad]
    cut = good[need - 1] + 1
    return cut, images[:need], [s for s in skips if s[0] < cut]


class _Run:
    """Mutable state of one prepare run, persisted by ``commit``."""

    def __init__(self, out: Path, request: dict, identity: dict, capacity: int, state: dict | None):
        state = state or {}
        self.out, self.request, self.identity, self.capacity = out, request, identity, capacity
        self.consumed = int(state.get("consumed", 0))
        self.written = int(state.get("written", 0))
        self.skipped: list[dict] = list(state.get("skipped", []))
        self.skipped_count = int(state.get("skipped_count", len(self.skipped)))
        self.small_count = int(state.get("skipped_small", 0))
        self.position = state.get("position")
        self.workers = 0

    def add_skips(self, skips: list) -> None:
        for _, key, reason in skips:
            self.skipped_count += 1
            self.small_count += reason.startswith(TOO_SMALL)
            if len(self.skipped) < MAX_SKIP_RECORDS:
                self.skipped.append({"key": key, "reason": reason})

    def commit(self, *writers) -> None:
        for writer in writers:
            if writer is not None:
                writer.flush()  # rows reach the file before progress.json claims them
        outdir.save_progress(self.out, {
            "request": self.request, "identity": self.identity, "capacity": self.capacity,
            "consumed": self.consumed, "written": self.written, "position": self.position,
            "skipped": self.skipped, "skipped_count": self.skipped_count, "skipped_small": self.small_count,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })


def _disk_full(out: Path) -> SaganError:
    return SaganError(f"disk full while writing {out}; free some space and re-run the same command to resume")


def _check_resumable(out: Path, progress: dict, identity: dict, capacity: int, labelled: bool) -> None:
    if progress.get("identity") != identity or progress.get("capacity") != capacity:
        raise SaganError(f"the source changed since {out} was started ({outdir.differences(progress.get('identity') or {}, identity)}); "
                         "pass --force to start over")
    path = out / IMAGES
    need = npyfile.HEADER_BYTES + int(progress.get("written", 0)) * npyfile.row_bytes(progress["request"]["imsize"])
    if not path.exists() or path.stat().st_size < need:
        raise SaganError(f"{path} is shorter than {out / outdir.PROGRESS} says; pass --force to start over")
    path = out / LABELS
    need = npyfile.HEADER_BYTES + int(progress.get("written", 0)) * npyfile.LABEL_BYTES
    if labelled and (not path.exists() or path.stat().st_size < need):
        raise SaganError(f"{path} is shorter than {out / outdir.PROGRESS} says; pass --force to start over")


def prepare(out: Path, request: dict, make_source: Callable[[], Source], opts: Options,
            say: Callable[[str], None]) -> Outcome:
    """Build (or finish, or confirm) the dataset in ``out`` described by ``request``."""
    from sagan_cli.util.progress import Reporter

    out = Path(out)
    status, state = outdir.inspect(out, request, opts.force)
    if status == "done":
        return _finish_preview(Outcome(out, int(state["count"]), int(state.get("skipped_count", 0)),
                                       int(state.get("skipped_small", 0)), already=True,
                                       classes=state.get("classes"), class_counts=state.get("class_counts")), opts)
    source = make_source()
    target = min(len(source), opts.max_images or len(source))
    identity = dict(source.identity)
    classes = getattr(source, "classes", None)
    transform = Transform(opts.imsize, opts.crop or "center", opts.resample or "lanczos", opts.min_size or 0)
    images_path = out / IMAGES
    t0 = time.monotonic()
    try:
        if status == "resume":
            _check_resumable(out, state, identity, target, classes is not None)
            run = _Run(out, request, identity, target, state)
            say(f"resuming {out}: {run.written} of {target} images done, {run.consumed} of {len(source)} entries read")
        else:
            made_dir = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            run = _Run(out, request, identity, target, None)
            run.commit(None)  # progress.json first: marks the directory as ours
        start_written = run.written
        finished = run.written >= target or run.consumed >= len(source)
        if not finished:
            npyfile.allocate(images_path, target, opts.imsize)
            _fill(run, source, transform, opts, images_path, target, Reporter, classes is not None)
        if run.written == 0:
            first = run.skipped[0] if run.skipped else {"key": "?", "reason": "?"}
            # nothing to resume: what this command created goes (a re-run would only fail the same way)
            outdir.clear(out)
            if status != "resume" and made_dir:
                with contextlib.suppress(OSError):
                    out.rmdir()
            if run.small_count and run.small_count == run.skipped_count:
                size = first["reason"].split(": ", 1)[-1].split(",")[0]
                raise SaganError(f"every image of {source.label} has a short side under --min-size {opts.min_size} "
                                 f"({run.consumed} image{'s' if run.consumed != 1 else ''}, first: {first['key']}, {size}); "
                                 "pass a smaller --min-size (0 keeps every image)")
            raise SaganError(f"no image could be decoded from {source.label}: all {run.consumed} entries were skipped "
                             f"(first: {first['key']}: {first['reason']})")
        fingerprint = npyfile.finalise(images_path, run.written, opts.imsize)
        labelled = {}
        if classes is not None:
            npyfile.finalise_labels(out / LABELS, run.written)
            labels = np.load(out / LABELS, allow_pickle=False)
            fingerprint = with_labels(fingerprint, labels, classes)
            labelled = class_fields(labels, classes)
        elapsed = time.monotonic() - t0
        meta = base_meta(
            **source.info, **labelled, count=run.written, imsize=opts.imsize, crop=opts.crop, resample=opts.resample,
            fingerprint=fingerprint, skipped=run.skipped, skipped_count=run.skipped_count,
            skipped_small=run.small_count, min_size=opts.min_size, source_entries=len(source),
            entries_read=run.consumed, max_images=opts.max_images,
            request=request, identity=identity,
            last_run={"images": run.written - start_written, "workers": run.workers, "seconds": round(elapsed, 3)},
        )
        write_meta(out, meta)
        (out / outdir.PROGRESS).unlink(missing_ok=True)
    except OSError as exc:
        if disk_full(exc):
            raise _disk_full(out) from None
        reason = why(exc.filename or out, exc)
        if exc.filename and reason == (exc.strerror or str(exc)):
            reason = f"{exc.filename}: {reason}"
        raise SaganError(f"cannot write the dataset in {out}: {reason}") from None
    outcome = Outcome(out, run.written, run.skipped_count, run.small_count, resumed_from=start_written, elapsed_s=elapsed,
                      workers=run.workers, classes=labelled.get("classes"), class_counts=labelled.get("class_counts"))
    return _finish_preview(outcome, opts)


def _good_labels(source: Source, chunk: list, n_entries: int, skips: list, n_images: int) -> np.ndarray:
    """The class ids of a chunk's images: its entries up to ``n_entries`` that were not skipped."""
    bad = {pos for pos, _, _ in skips}
    return np.array([source.class_of(chunk[p]) for p in range(n_entries) if p not in bad][:n_images], np.int64)


def _fill(run: _Run, source: Source, transform: Transform, opts: Options, images_path: Path,
          target: int, reporter_cls, labelled: bool = False) -> None:
    writer = npyfile.RowWriter(images_path, opts.imsize, target, run.written)
    lwriter = npyfile.LabelWriter(images_path.parent / LABELS, target, run.written) if labelled else None
    remaining = len(source) - run.consumed
    workers = min(opts.workers, max(1, math.ceil(remaining / source.chunk_size)))
    run.workers = workers
    reporter = None
    try:
        with Decoder(workers) as decoder:  # before the reporter: a pool is started without threads around
            reporter = reporter_cls("prepare", target, done=run.written)
            last_commit = time.monotonic()
            for chunk, (images, skips) in decoder.run(source, transform, run.consumed, run.position):
                n_entries, images, skips = _take(len(chunk), images, skips, target - run.written)
                writer.write(images)
                if lwriter is not None:
                    lwriter.write(_good_labels(source, chunk, n_entries, skips, len(images)))
                run.written += len(images)
                run.consumed += n_entries
                run.position = source.position(chunk[n_entries - 1])
                run.add_skips(skips)
                reporter.update(run.written, note=f"{run.skipped_count} skipped" if run.skipped_count else "")
                if run.written >= target:
                    break
                if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    run.commit(writer, lwriter)
                    last_commit = time.monotonic()
        run.commit(writer, lwriter)
    except KeyboardInterrupt:
        if reporter is not None:
            reporter.close()
        run.commit(writer, lwriter)
        raise SaganError(f"interrupted after {run.written} of {target} images; "
                         "re-run the same command to resume", exit_code=EXIT_INTERRUPTED) from None
    finally:
        if reporter is not None:
            reporter.close()
        if lwriter is not None:
            lwriter.close()


def _finish_preview(outcome: Outcome, opts: Options) -> Outcome:
    if opts.preview:
        outcome.preview = write_preview(outcome.out)
    return outcome


def write_preview(out: Path) -> Path:
    """A grid PNG of the first 64 prepared images, ``preview.png`` in the dataset directory."""
    from sagan_cli.util.images import grid, save_png

    try:
        refuse_pickled(out / IMAGES)
        images = np.load(out / IMAGES, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # never unpickled: object arrays are refused
        raise SaganError(f"{out / IMAGES} cannot be read for the preview ({exc}); rebuild it with --force") from None
    first = np.ascontiguousarray(images[:PREVIEW_IMAGES]).transpose(0, 2, 3, 1)
    return save_png(grid(first, nrow=8), out / outdir.PREVIEW)
