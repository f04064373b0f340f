"""Benchmark output: a terminal table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from benchmarks.load import LevelResult

_console = Console(stderr=True)


def print_levels(title: str, levels: Sequence[LevelResult], limit_images_per_s: float | None = None) -> None:
    table = Table(title=title)
    for column in ("load", "ok", "errors", "img/s", "÷ in-process", "p50 ms", "p90 ms", "p99 ms", "batch", "RSS MB"):
        table.add_column(column, justify="right")
    for level in levels:
        s = level.summary()
        load = f"c={level.concurrency}" if level.mode == "closed" else f"{level.rate:g}/s"
        ratio = f"{level.images_per_s / limit_images_per_s:.3f}" if limit_images_per_s else "-"
        errors = ", ".join(f"{k}:{v}" for k, v in level.errors.items()) or "0"
        table.add_row(
            load, str(level.ok), errors, f"{level.images_per_s:.1f}", ratio,
            _fmt(s["p50_ms"]), _fmt(s["p90_ms"]), _fmt(s["p99_ms"]), _fmt(s["mean_batch_size"]), _fmt(s["server_rss_mb"]),
        )
    _console.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def plot_levels(
    path: Path, series: dict[str, Sequence[LevelResult]], limit_images_per_s: float | None, title: str
) -> None:
    """Throughput and p99 latency against concurrency, with the in-process limit as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, levels in series.items():
        closed = [level for level in levels if level.mode == "closed"]
        if not closed:
            continue
        x = [level.concurrency for level in closed]
        throughput_axis.plot(x, [level.images_per_s for level in closed], marker="o", label=name)
        latency_axis.plot(x, [level.percentile(99) or 0 for level in closed], marker="o", label=name)
    if limit_images_per_s:
        throughput_axis.axhline(limit_images_per_s, color="grey", linestyle="--", label="in-process limit")
    for axis, ylabel in ((throughput_axis, "images/s"), (latency_axis, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
