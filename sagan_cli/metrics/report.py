"""Presenting an evaluation: a Rich table that states the protocol, a line in the run's metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

from sagan_cli.metrics.table import METRICS


def _computed(record: dict):
    """The table entries of the record's metrics, in table order."""
    return [m for m in METRICS.values() if m.name in record["metrics"]]


def rows(record: dict) -> list[tuple[str, str]]:
    return [row for m in _computed(record) for row in m.rows(record)]


def protocol_lines(record: dict) -> list[str]:
    p = record["protocol"]
    if "network" in p:  # some metric used the Inception
        lines = [f"network: {p['network']}, weights {record['weights']} (sha256 {p['weights_sha256'][:8]}…)",
                 f"images: {p['images']}; {p['resize']}; {p['normalisation']}; {p['features']}"]
    else:
        lines = [f"images: {p['images']}"]
    lines.append(f"generated: {record['generated']}")
    if "real" in record:
        cached = " (cached statistics reused)" if record.get("real_stats_cached") else ""
        lines.append(f"real: {record['real']}{cached}")
    lines += [f"{m.label}: {p[m.name]}" for m in _computed(record) if m.name in p]
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
    """One JSON line (``"kind": "eval"``) appended to ``<run>/metrics.jsonl`` (see ``sagan_cli.train.metrics_file``)."""
    from sagan_cli.train.metrics_file import append_record

    return append_record(Path(run_dir) / "metrics.jsonl", record)
