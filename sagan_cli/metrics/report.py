"""Presenting an evaluation: a Rich table that states the protocol, a line in the run's metrics.jsonl."""

from __future__ import annotations

from pathlib import Path


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


def rows(record: dict) -> list[tuple[str, str]]:
    out = []
    if "fid" in record:
        out.append(("FID", _fmt(record["fid"])))
    if "is_mean" in record:
        out.append(("IS", f"{_fmt(record['is_mean'])} ± {_fmt(record['is_std'])}"))
    if "kid_mean" in record:
        out.append(("KID", f"{record['kid_mean']:.6f} ± {record['kid_std']:.6f}"))
    if "precision" in record:
        out.append(("precision", _fmt(record["precision"])))
        out.append(("recall", _fmt(record["recall"])))
    return out


def protocol_lines(record: dict) -> list[str]:
    p = record["protocol"]
    lines = [
        f"network: {p['network']}, weights {record['weights']} (sha256 {p['weights_sha256'][:8]}…)",
        f"images: {p['images']}; {p['resize']}; {p['normalisation']}; {p['features']}",
        f"generated: {record['generated']}",
    ]
    if "real" in record:
        cached = " (cached statistics reused)" if record.get("real_stats_cached") else ""
        lines.append(f"real: {record['real']}{cached}")
    metrics = record["metrics"]
    if "is" in metrics:
        lines.append(f"IS: {p['is']}")
    if "kid" in metrics:
        lines.append(f"KID: {p['kid']}")
    if "pr" in metrics:
        lines.append(f"precision/recall: {p['pr']}")
    lines.append(f"device: {record['device']}, {record['seconds']:.1f}s")
    return lines


def print_table(record: dict, console) -> None:
    from rich.table import Table

    title = "sagan evaluate"
    if record.get("checkpoint"):
        title += f" · step {record['step']} · {'EMA' if record.get('ema') else 'raw'} G"
    table = Table(title=title, title_justify="left", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows(record):
        table.add_row(name, value)
    console.print(table)
    for line in protocol_lines(record):
        console.print(line, markup=False, highlight=False)


def append_metrics(run_dir: Path, record: dict) -> Path:
    """One JSON line (``"kind": "eval"``) appended to ``<run>/metrics.jsonl`` (see ``sagan_cli.metrics_file``)."""
    from sagan_cli.metrics_file import append_record

    return append_record(Path(run_dir) / "metrics.jsonl", record)
