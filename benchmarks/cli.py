"""`python -m benchmarks`: load a running server, measure the in-process limit, or run the whole suite."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Sequence

import uvloop

from benchmarks.arguments import add_workload_arguments, int_list, workload_from_args
from benchmarks.compare import add_parser as add_compare_parser, run_compare
from benchmarks.corpus import jpeg_corpus
from benchmarks.levels import run_levels
from benchmarks.peers import add_peers_parser, run_peers
from benchmarks.report import plot_levels, print_levels, write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmarks for TF Serving-compatible gRPC servers. `load` drives any running server "
            "(ours, tensorflow_model_server, ...); `inprocess` measures the exported model's own limit; "
            "`suite` starts our server in each configuration and measures every published figure in one run "
            "(the README's and docs/performance.md's tables and plot); `publish` renders the pages' figures from "
            "the stored results; `floor-server` runs the bare grpc.aio baseline."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "load", help="closed-loop and/or open-loop load against a running server (ours, TF Serving, Triton, ...)"
    )
    load.add_argument("--target", required=True, help="HOST:PORT of the server (the REST port for tfs-rest and kserve-http*)")
    add_workload_arguments(load)
    load.add_argument("--concurrency", type=int_list, default=[1, 4, 16, 32, 64], help="closed-loop levels, e.g. 1,4,16")
    load.add_argument("--rate", type=float, default=None, help="also run open-loop load at this many requests/s")
    load.add_argument("--duration", type=float, default=10.0, help="measured seconds per level (default 10)")
    load.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level (default 3)")
    load.add_argument("--metrics-url", default=None, help="the server's Prometheus URL, for mean batch size and RSS")
    load.add_argument(
        "--inprocess-model", type=Path, default=None,
        help="a SavedModel version dir: measure its in-process limit first and print server ÷ limit",
    )
    load.add_argument("--out", type=Path, default=Path("benchmarks/results/load"), help="JSON and PNG go here")

    inprocess = commands.add_parser("inprocess", help="the exported model's predict_images, in this process")
    inprocess.add_argument("model_dir", type=Path, help="a SavedModel version directory, e.g. models/inception/1")
    inprocess.add_argument("--batch-sizes", type=int_list, default=[1, 8, 16, 32])
    inprocess.add_argument("--seconds", type=float, default=6.0, help="seconds per batch size")

    floor = commands.add_parser("floor-server", help="serve the bare grpc.aio + numpy baseline")
    floor.add_argument("--host", default="127.0.0.1")
    floor.add_argument("--port", type=int, default=8600)

    goodput = commands.add_parser(
        "goodput", help="open-loop overload with client deadlines, with and without deadline-aware admission"
    )
    goodput.add_argument("--models", type=Path, default=Path("models/bench"), help="exported models are cached here")
    goodput.add_argument("--duration", type=float, default=10.0, help="measured seconds per case and side")
    goodput.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    goodput.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="goodput.json goes here")
    goodput.add_argument(
        "--in-process", action="store_true",
        help="the batcher alone with a model that sleeps Inception's CPU batch times: the policy's goodput "
        "with no CPU spent on receiving and refusing requests (no server, no TensorFlow)",
    )

    suite = commands.add_parser(
        "suite", help="every figure of the README and docs/performance.md, in one run, on this machine (about 40 min on 2 cores)"
    )
    suite.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="JSON, PNG and log go here")
    suite.add_argument("--models", type=Path, default=Path("models/bench"), help="exported models are cached here")
    suite.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    suite.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each level")
    suite.add_argument("--concurrency", type=int_list, default=[1, 4, 16, 32, 64])
    suite.add_argument("--skip-bf16", action="store_true", help="skip the bfloat16 export's measurements")
    suite.add_argument("--rounds", type=int, default=5,
                       help="rounds of alternating blocks per comparison (the trivial model's: twice as many; a lone "
                       "request against the in-process call: 40 request pairs per round; default 5)")
    suite.add_argument("--auto-starts", type=int, default=3,
                       help="starts of a --max_batch_size=auto server, each measured against fixed sizes (0: skip)")
    suite.add_argument("--publish", action="store_true",
                       help="replace docs/benchmarks/suite-2core-cpu.json and the docs' plot with this run's, and "
                       "render the pages' figures from them")

    publish = commands.add_parser("publish", help="render the README's and docs' figures from docs/benchmarks/*.json")
    publish.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs from its data")
    add_compare_parser(commands)
    add_peers_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "load":
        return uvloop.run(_run_load(args))
    if args.command == "inprocess":
        from benchmarks.inprocess import measure_in_process

        result = measure_in_process(args.model_dir, jpeg_corpus(64), args.batch_sizes, args.seconds)
        for level in result.levels:
            print(f"batch {level.batch_size:3d}: {level.images_per_s:7.2f} img/s  p50 {level.p50_batch_ms:8.2f} ms/batch")
        print(f"in-process limit: {result.best.images_per_s:.2f} img/s at batch {result.best.batch_size}")
        return 0
    if args.command == "floor-server":
        from benchmarks.floor_server import serve_floor

        uvloop.run(serve_floor(args.host, args.port))
        return 0
    if args.command == "goodput":
        if args.in_process:
            from benchmarks.goodput import print_simulated, simulate

            report = simulate(duration_s=args.duration)
            print_simulated(report)
            write_json(args.out / "goodput_in_process.json", report)
            return 0
        from benchmarks.suite import run_goodput_only

        return run_goodput_only(args)
    if args.command == "compare":
        return run_compare(args)
    if args.command == "suite":
        from benchmarks.suite import run_suite

        return run_suite(args)
    if args.command == "peers":
        return run_peers(args)
    if args.command == "publish":
        from benchmarks.publish import check_pages, publish_pages
        from benchmarks.launcher import REPO_ROOT

        if args.check:
            stale = check_pages(REPO_ROOT)
            for page in stale:
                print(f"{page}: its figures differ from docs/benchmarks; run python -m benchmarks publish", file=sys.stderr)
            return 1 if stale else 0
        for page in publish_pages(REPO_ROOT):
            print(f"rewrote {page}")
        return 0
    return 2


async def _run_load(args: argparse.Namespace) -> int:
    limit = None
    report: dict[str, object] = {"target": args.target, "model": args.model, "input": args.input}
    if args.inprocess_model:
        from benchmarks.inprocess import measure_in_process

        in_process = await asyncio.to_thread(measure_in_process, args.inprocess_model, jpeg_corpus(64))
        limit = in_process.best.images_per_s
        report["in_process"] = in_process.summary()
    workload = workload_from_args(args)
    levels = await run_levels(args.target, workload, args.concurrency, args.rate, args.duration, args.warmup, args.metrics_url)
    print_levels(f"{args.target} ({args.input})", levels, limit)
    report["levels"] = [level.summary() for level in levels]
    write_json(args.out / "load.json", report)
    plot_levels(args.out / "load.png", {args.target: levels}, limit, f"{args.model} via {args.target}")
    print(f"wrote {args.out / 'load.json'} and {args.out / 'load.png'}", file=sys.stderr)
    failed = sum(sum(level.errors.values()) for level in levels)
    return 0 if failed == 0 or args.rate else 1

