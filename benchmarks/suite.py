"""Every performance goal measured in one run on this machine, so each figure is a ratio of the same run.

Starts our server in each configuration (batching on, off; trivial model; bf16) and the floor server, drives
them with the load generator, and writes `suite.json`, `throughput_latency.png` and a goal table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from benchmarks.corpus import jpeg_corpus
from benchmarks.goodput import goals as goodput_goals, print_cases, run_goodput
from benchmarks.inprocess import InProcessModel, measure_in_process
from benchmarks.interleave import alternate, paired, server_block
from benchmarks.launcher import floor_server, our_server
from benchmarks.levels import run_levels
from benchmarks.load import LevelResult, SingleRequests, Workload
from benchmarks.report import goal, plot_levels, print_levels, write_json
from benchmarks.server_stats import scrape

# CPU: batch 16 is this network's best in-process batch size (32 is slower), and padding would only
# add work, so no allowed_batch_sizes (the signatures never retrace for a new batch size).
CPU_MAX_BATCH_SIZE = 16
CPU_BATCHING_FLAGS = (
    "--enable_batching=true", f"--max_batch_size={CPU_MAX_BATCH_SIZE}", "--num_batch_threads=1",
    "--batch_timeout_micros=1000",
)
# Goal 5's queue bound: 64 requests (one image each) in the server at once, whether decoding, queued or in the
# running batch. An accepted request then waits at most the bound's 64 images: the running batch and three more,
# its own included. TF Serving's `max_enqueued_batches` counts only waiting batches, so under sustained overload
# an accepted request waits the running batch *plus* 64 queued images, exactly the goal's bound with no room
# for the overload's own slowdown: measured beside the goal as a second reading.
OVERLOAD_QUEUE_BOUND = 64
OVERLOAD_INFLIGHT_FLAG = f"--max_inflight_requests={OVERLOAD_QUEUE_BOUND}"
OVERLOAD_BATCH_QUEUE_FLAG = f"--max_enqueued_batches={OVERLOAD_QUEUE_BOUND // CPU_MAX_BATCH_SIZE}"
GOAL2_PAIRS_PER_ROUND = 40  # about 7 s of pairs per round at 80 ms a call
ISSUE_4B_RATIO = 1.0 / 0.42  # the issue's c=1 goal (1 ms) over its floor's p50 (0.42 ms) on its machine


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_export(base: Path, *flags: str) -> Path:
    """Export once into the cache; later runs reuse it."""
    version_dir = base / "1"
    if not (version_dir / "saved_model.pb").is_file():
        _log(f"exporting {base} {' '.join(flags)}")
        subprocess.run([sys.executable, "-m", "model_export", "--output", str(base), *flags], check=True)
    return version_dir


def _levels(target: str, workload: Workload, concurrencies, args, metrics_url, rate=None) -> list[LevelResult]:
    return uvloop.run(run_levels(target, workload, concurrencies, rate, args.duration, args.warmup, metrics_url))


def run_suite(args: argparse.Namespace) -> int:
    corpus = jpeg_corpus(64)
    inception = ensure_export(args.models / "inception", "--seed", "0")
    tiny = ensure_export(args.models / "tiny", "--model", "tiny")
    report: dict[str, Any] = {"corpus": f"{len(corpus)} JPEGs, mixed sizes", "duration_s": args.duration}
    rounds = args.rounds

    _log("in-process limit (predict_images: decode, resize, network)")
    local = InProcessModel(inception, corpus)
    seconds_per_size = max(args.duration / 2, 1)
    in_process = local.table((1, 8, 16, 32), seconds_per_size)
    report["in_process_fp32"] = in_process.summary()

    jpeg_load = Workload.encoded_images("inception", corpus)
    # A block at 32-64 clients must first fill the queue (about 4 s at 16 images/s) before it measures.
    block_s, block_warmup_s = max(args.duration * 0.6, 2), max(args.warmup, 5)
    _log("our server, batching on")
    with our_server(inception.parent, "inception", *CPU_BATCHING_FLAGS) as server:
        rss_after_warmup = scrape(server.metrics_url).rss_bytes
        batching_on = _levels(server.target, jpeg_load, args.concurrency, args, server.metrics_url)
        sustainable = max(level.requests_per_s for level in batching_on)

        _log(f"goal 1, interleaved ({rounds} rounds): in-process batch {in_process.best.batch_size} vs server c=32")
        goal1 = alternate(
            lambda: local.measure(in_process.best.batch_size, block_s).images_per_s,
            lambda: server_block(server.target, jpeg_load, 32, block_s, block_warmup_s).images_per_s,
            rounds, "ratio",
        )
        # The in-process limit every ratio uses: the interleaved blocks' median, which a slow minute at the
        # start of the run (the table's single pass) cannot skew.
        limit = statistics.median(goal1.baseline)
        _log(f"REST, interleaved ({rounds} rounds): in-process batch {in_process.best.batch_size} vs REST c=32")
        rest_jpeg_load = Workload.encoded_images("inception", corpus, protocol="tfs-rest")
        rest_inception = alternate(
            lambda: local.measure(in_process.best.batch_size, block_s).images_per_s,
            lambda: server_block(server.rest_target, rest_jpeg_load, 32, block_s, block_warmup_s).images_per_s,
            rounds, "ratio",
        )
        pairs = GOAL2_PAIRS_PER_ROUND * rounds
        _log(f"goal 2, paired ({pairs} pairs): in-process batch 1 vs a lone server request, same image")
        with SingleRequests(server.target, jpeg_load) as lone:
            goal2 = paired(local.time_one, lone.latency_ms, pairs, warmup_pairs=4)
        _log("our server, batching off")
        with our_server(inception.parent, "inception", "--enable_batching=false") as unbatched:
            batching_off = _levels(unbatched.target, jpeg_load, [1, 64], args, unbatched.metrics_url)
            _log(f"goal 3, interleaved ({rounds} rounds): batching off vs on at c=64")
            goal3 = alternate(
                lambda: server_block(unbatched.target, jpeg_load, 64, block_s, block_warmup_s).images_per_s,
                lambda: server_block(server.target, jpeg_load, 64, block_s, block_warmup_s).images_per_s,
                rounds, "ratio",
            )
        rss_after_run = scrape(server.metrics_url).rss_bytes
    del local  # its TensorFlow graph and buffers are not needed any more

    # Goal 5 on servers of their own, so the levels above (and any --concurrency above 64) are never refused.
    overload_rate = 10 * sustainable
    overload, rss_after_overload = _overload(inception, jpeg_load, overload_rate, args, OVERLOAD_INFLIGHT_FLAG)
    overload_batch_queue, _ = _overload(inception, jpeg_load, overload_rate, args, OVERLOAD_BATCH_QUEUE_FLAG)
    goodput = run_goodput(
        inception, "inception", jpeg_load, CPU_BATCHING_FLAGS, duration_s=args.duration, warmup_s=args.warmup
    )

    pixel_load = Workload.pixels("tiny", 32, 32)
    _log("trivial model: our server and the floor server")
    with our_server(tiny.parent, "tiny", "--enable_batching=true", "--max_batch_size=64", "--num_batch_threads=1") as ours, \
            floor_server() as floor:
        trivial_ours = _levels(ours.target, pixel_load, [1, 64], args, ours.metrics_url)
        trivial_floor = _levels(floor.target, pixel_load, [1, 64], args, None)
        trivial_s = max(args.duration / 4, 1)
        _log(f"goal 4, interleaved ({2 * rounds} rounds): floor vs ours at c=64 and c=1")
        goal4a = alternate(
            lambda: server_block(floor.target, pixel_load, 64, trivial_s, 0.5).requests_per_s,
            lambda: server_block(ours.target, pixel_load, 64, trivial_s, 0.5).requests_per_s,
            2 * rounds, "ratio",
        )
        goal4b = alternate(
            lambda: server_block(floor.target, pixel_load, 1, trivial_s, 0.5).percentile(50) or 0.0,
            lambda: server_block(ours.target, pixel_load, 1, trivial_s, 0.5).percentile(50) or 0.0,
            2 * rounds, "difference",
        )
        _log(f"REST, interleaved ({2 * rounds} rounds): gRPC vs REST at c=64")
        rest_pixel_load = Workload.pixels("tiny", 32, 32, protocol="tfs-rest")
        rest_trivial = alternate(
            lambda: server_block(ours.target, pixel_load, 64, trivial_s, 0.5).requests_per_s,
            lambda: server_block(ours.rest_target, rest_pixel_load, 64, trivial_s, 0.5).requests_per_s,
            2 * rounds, "ratio",
        )

    bf16: dict[str, Any] | None = None
    if not args.skip_bf16:
        bf16 = _bf16_goal(args, corpus, inception, limit)

    print_levels("Inception-v3, batching on", batching_on, limit)
    print_levels("Inception-v3, batching off", batching_off, limit)
    print_levels(f"overload (open loop, 10x sustainable), {OVERLOAD_INFLIGHT_FLAG}", [overload], limit)
    print_levels(f"overload (open loop, 10x sustainable), {OVERLOAD_BATCH_QUEUE_FLAG}", [overload_batch_queue], limit)
    print_cases(goodput)
    print_levels("trivial model: ours", trivial_ours)
    print_levels("trivial model: floor server", trivial_floor)

    # Goal 5a's bound: the queue bound's images plus one full batch, at the in-process limit.
    overload_bound_s = (OVERLOAD_QUEUE_BOUND + CPU_MAX_BATCH_SIZE) / limit
    goals = {
        "1_throughput_c32_over_inprocess": goal(goal1.median, ">=", 0.97),
        "2_p50_c1_minus_inprocess_batch1_ms": goal(goal2.difference_of_medians, "<=", 2.0),
        "3_batching_on_over_off_c64": goal(goal3.median, ">=", 1.12),
        "4a_trivial_c64_over_floor": goal(goal4a.median, ">=", 0.8),
        "4b_trivial_c1_p50_ms": goal(statistics.median(goal4b.candidate), "<=", 1.0),
        "5a_overload_accepted_p99_s": goal(
            (overload.percentile(99) or 0) / 1000, "<=", overload_bound_s
        ),
        "5b_overload_rejection_p99_ms": goal(overload.percentile(99, errors=True) or 0.0, "<=", 10.0),
        "rest_inception_c32_over_inprocess": goal(rest_inception.median, ">=", 0.97),
        "rest_over_grpc_trivial_c64": goal(rest_trivial.median, ">=", 0.6),
    }
    # Second readings, reported beside the goals above, never instead of them:
    # - 4b as a ratio: the issue's 1 ms was set where the floor answers in 0.42 ms; absolute figures move 2x
    #   between machines, so also compare ours ÷ floor (median per-round ratio of p50s) with 1 ÷ 0.42.
    # - 5a by Little's law at the rate the server actually served during the overload (the load client
    #   shares the cores), with one batch at that rate's mean batch size.
    # - 5a with TF Serving's batch-queue bound (`max_enqueued_batches`, waiting batches only) in place of the
    #   in-system one: under sustained overload its accepted requests wait exactly the bound (see the top).
    # - 2 as the median of per-pair differences (each pair: the same image, a fraction of a second apart).
    goals["2_reading_median_paired_difference_ms"] = goal(goal2.median, "<=", 2.0)
    goals["4b_reading_trivial_c1_p50_over_floor"] = goal(
        statistics.median(c / b for b, c in zip(goal4b.baseline, goal4b.candidate) if b), "<=", ISSUE_4B_RATIO
    )
    if overload.images_per_s:
        served_batch = overload.mean_batch_size or CPU_MAX_BATCH_SIZE
        goals["5a_reading_accepted_p99_s_at_served_rate"] = goal(
            (overload.percentile(99) or 0) / 1000, "<=", (OVERLOAD_QUEUE_BOUND + served_batch) / overload.images_per_s
        )
    goals["5a_reading_batch_queue_bound_p99_s"] = goal(
        (overload_batch_queue.percentile(99) or 0) / 1000, "<=", overload_bound_s
    )
    goals.update(goodput_goals(goodput))
    if bf16:
        goals["7_bf16_server_over_fp32_inprocess"] = goal(bf16["server_images_per_s"] / limit, ">=", 1.4)
    report.update(
        batching_on=[l.summary() for l in batching_on],
        batching_off=[l.summary() for l in batching_off],
        overload={"flag": OVERLOAD_INFLIGHT_FLAG, **overload.summary()},
        overload_batch_queue_bound={"flag": OVERLOAD_BATCH_QUEUE_FLAG, **overload_batch_queue.summary()},
        goodput_under_deadlines=goodput,
        trivial_ours=[l.summary() for l in trivial_ours],
        trivial_floor=[l.summary() for l in trivial_floor],
        interleaved={
            "1_inprocess_best_vs_server_c32_images_per_s": goal1.summary(),
            "2_inprocess_batch1_vs_lone_server_request_ms": goal2.summary(),
            "3_batching_off_vs_on_c64_images_per_s": goal3.summary(),
            "4a_floor_vs_ours_c64_requests_per_s": goal4a.summary(),
            "4b_floor_vs_ours_c1_p50_ms": goal4b.summary(),
            "rest_inprocess_best_vs_rest_c32_images_per_s": rest_inception.summary(),
            "rest_grpc_vs_rest_trivial_c64_requests_per_s": rest_trivial.summary(),
        },
        bf16=bf16,
        in_process_limit_images_per_s=round(limit, 3),
        server_rss_mb={
            "after_warmup": _mb(rss_after_warmup),
            "after_run": _mb(rss_after_run),
            "overload_server_after_overload": _mb(rss_after_overload),
        },
        goals=goals,
    )
    write_json(args.out / "suite.json", report)
    plot_levels(
        args.out / "throughput_latency.png",
        {"batching on": batching_on, "batching off": batching_off},
        limit,
        "Inception-v3 on this machine: gRPC Predict, JPEG inputs",
    )
    for name, line in goals.items():
        print(f"{name:40s} {line['value']:10.3f} {line['op']} {line['target']:<8.3f} {'PASS' if line['met'] else 'MISS'}")
    _log(f"wrote {args.out / 'suite.json'} and {args.out / 'throughput_latency.png'}")
    return 0


def run_goodput_only(args: argparse.Namespace) -> int:
    """`python -m benchmarks goodput`: the suite's goodput scenario alone, on the same exported model."""
    inception = ensure_export(args.models / "inception", "--seed", "0")
    report = run_goodput(
        inception, "inception", Workload.encoded_images("inception", jpeg_corpus(64)), CPU_BATCHING_FLAGS,
        duration_s=args.duration, warmup_s=args.warmup,
    )
    report["goals"] = goodput_goals(report)
    print_cases(report)
    for name, line in report["goals"].items():
        print(f"{name:60s} {line['value']:10.3f} {line['op']} {line['target']:<8.3f} {'PASS' if line['met'] else 'MISS'}")
    write_json(args.out / "goodput.json", report)
    _log(f"wrote {args.out / 'goodput.json'}")
    return 0


def _overload(
    version_dir: Path, workload: Workload, rate: float, args: argparse.Namespace, bound_flag: str
) -> tuple[LevelResult, float | None]:
    """Open loop at `rate` against a fresh server bounded by `bound_flag`; its level and RSS afterwards."""
    _log(f"overload: open loop at {rate:.1f} requests/s (10x sustainable), {bound_flag}")
    with our_server(version_dir.parent, "inception", *CPU_BATCHING_FLAGS, bound_flag) as server:
        [level] = _levels(server.target, workload, [], args, server.metrics_url, rate=rate)
        return level, scrape(server.metrics_url).rss_bytes


def _bf16_goal(args: argparse.Namespace, corpus: list[bytes], fp32_dir: Path, fp32_limit: float) -> dict[str, Any]:
    bf16_dir = ensure_export(args.models / "inception_bf16", "--seed", "0", "--precision", "bf16")
    _log("bf16: in-process limit, accuracy against fp32, server at c=32")
    in_process = measure_in_process(bf16_dir, corpus, (16, 32), seconds_per_size=max(args.duration / 2, 1))
    agreement = _agreement(fp32_dir, bf16_dir, corpus)
    with our_server(bf16_dir.parent, "inception", *CPU_BATCHING_FLAGS) as server:
        [level] = _levels(server.target, Workload.encoded_images("inception", corpus), [32], args, server.metrics_url)
    return {
        "in_process": in_process.summary(),
        "server_c32": level.summary(),
        "server_images_per_s": level.images_per_s,
        "fp32_in_process_limit": fp32_limit,
        **agreement,
    }


def _agreement(fp32_dir: Path, bf16_dir: Path, corpus: list[bytes]) -> dict[str, float]:
    """Top-1 / top-5 agreement of bf16 with fp32 on the corpus, and the largest score difference."""
    import tensorflow as tf

    outputs = []
    for directory in (fp32_dir, bf16_dir):
        predict = tf.saved_model.load(str(directory)).signatures["predict_images"]
        result = predict(images=tf.constant(corpus))
        outputs.append((result["classes"].numpy(), result["scores"].numpy()))
    (classes32, scores32), (classes16, scores16) = outputs
    top1 = float(np.mean(classes32[:, 0] == classes16[:, 0]))
    top5 = float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(classes32, classes16)]))
    return {"top1_agreement": top1, "top5_overlap": top5, "max_top1_score_difference": float(np.max(np.abs(scores32[:, 0] - scores16[:, 0])))}


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
