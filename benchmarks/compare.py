"""`python -m benchmarks compare A B`: two running servers under the same load, in alternating blocks.

A machine's speed drifts within minutes by as much as the differences worth measuring, so the two targets
are never measured minutes apart: each round runs one block on each (ABBA order: A first in even rounds, B
first in odd ones) and the report gives B ÷ A per round, their median and their spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

from benchmarks.arguments import add_workload_arguments, int_list, workload_from_args
from benchmarks.interleave import Comparison, server_block
from benchmarks.load import PROTOCOLS, LevelResult
from benchmarks.report import write_json


def alternate_blocks(
    run_a: Callable[[], LevelResult], run_b: Callable[[], LevelResult], rounds: int
) -> tuple[list[LevelResult], list[LevelResult]]:
    """`rounds` blocks of each side, ABBA."""
    a_blocks: list[LevelResult] = []
    b_blocks: list[LevelResult] = []
    for index in range(rounds):
        if index % 2:
            b_blocks.append(run_b())
            a_blocks.append(run_a())
        else:
            a_blocks.append(run_a())
            b_blocks.append(run_b())
    return a_blocks, b_blocks


def compare_blocks(a_blocks: list[LevelResult], b_blocks: list[LevelResult]) -> dict[str, object]:
    """B ÷ A for throughput and latency percentiles, per round, with median and spread."""
    figures: dict[str, Callable[[LevelResult], float]] = {
        "requests_per_s": lambda level: level.requests_per_s,
        "p50_ms": lambda level: level.percentile(50) or float("nan"),
        "p99_ms": lambda level: level.percentile(99) or float("nan"),
    }
    summary: dict[str, object] = {}
    for name, figure in figures.items():
        comparison = Comparison([figure(b) for b in a_blocks], [figure(b) for b in b_blocks], "ratio")
        ratios = comparison.per_round
        summary[name] = {
            **comparison.summary(),
            "spread": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    summary["errors"] = {"a": sum(sum(b.errors.values()) for b in a_blocks),
                         "b": sum(sum(b.errors.values()) for b in b_blocks)}
    return summary


def run_compare(args: argparse.Namespace) -> int:
    workload = workload_from_args(args)
    protocol_b = args.protocol_b or args.protocol
    workload_b = workload if protocol_b == args.protocol else workload_from_args(
        argparse.Namespace(**{**vars(args), "protocol": protocol_b}))
    report: dict[str, object] = {"a": args.a, "b": args.b, "protocol": args.protocol, "protocol_b": protocol_b,
                                 "model": args.model, "input": args.input,
                                 "rounds": args.rounds, "duration_s": args.duration, "levels": {}}
    levels: dict[str, object] = report["levels"]  # type: ignore[assignment]
    for concurrency in args.concurrency:
        a_blocks, b_blocks = alternate_blocks(
            lambda: server_block(args.a, workload, concurrency, args.duration, args.warmup),
            lambda: server_block(args.b, workload_b, concurrency, args.duration, args.warmup),
            args.rounds,
        )
        summary = compare_blocks(a_blocks, b_blocks)
        levels[str(concurrency)] = summary
        print_summary(concurrency, summary)
    write_json(args.out / "compare.json", report)
    print(f"wrote {args.out / 'compare.json'}", file=sys.stderr)
    return 0


def print_summary(concurrency: int, summary: dict[str, object]) -> None:
    print(f"c={concurrency}: B ÷ A over {len(summary['requests_per_s']['ratio'])} rounds")  # type: ignore[index]
    for name in ("requests_per_s", "p50_ms", "p99_ms"):
        figure = summary[name]
        a, b = statistics.median(figure["baseline"]), statistics.median(figure["candidate"])  # type: ignore[index]
        low, high = figure["spread"]  # type: ignore[index]
        print(f"  {name:15s} A {a:9.2f}  B {b:9.2f}  ratio {figure['median_ratio']:.3f}  (rounds {low:.3f}–{high:.3f})")  # type: ignore[index]
    errors = summary["errors"]
    if any(errors.values()):  # type: ignore[union-attr]
        print(f"  errors: {errors}")


def add_parser(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="two running servers under the same load, alternating ABBA rounds; prints B ÷ A"
    )
    compare.add_argument("a", help="HOST:PORT of the baseline server")
    compare.add_argument("b", help="HOST:PORT of the candidate server (the REST port for an HTTP protocol)")
    add_workload_arguments(compare)
    compare.add_argument("--protocol-b", choices=PROTOCOLS, default=None,
                         help="B's protocol when it is not --protocol's: one server's protocols against each "
                         "other, on the same payload")
    compare.add_argument("--concurrency", type=int_list, default=[1, 32], help="closed-loop levels (default 1,32)")
    compare.add_argument("--rounds", type=int, default=4, help="ABBA rounds per level (default 4)")
    compare.add_argument("--duration", type=float, default=5.0, help="measured seconds per block (default 5)")
    compare.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each block")
    compare.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="compare.json goes here")
