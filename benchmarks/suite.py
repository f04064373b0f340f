"""Every published figure measured in one run on this machine, so each one is a ratio of the same run.

Starts our server in each configuration (batching on, off; trivial model; bf16; `--max_batch_size=auto`)
and the floor server, drives them with the load generator, and writes `suite.json`, `throughput_latency.png`
and a summary. With `--publish` the results replace docs/benchmarks/suite-2core-cpu.json and the plot the docs
show, and the pages' figures are rendered again from them (benchmarks/publish.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from benchmarks.corpus import jpeg_corpus
from benchmarks.auto_batch import run_auto_versus_fixed
from benchmarks.goodput import print_cases, run_goodput
from benchmarks.inprocess import InProcessModel, measure_in_process
from benchmarks.interleave import alternate, paired, server_block
from benchmarks.json_parsing import measure_json_parsing
from benchmarks.launcher import REPO_ROOT, floor_server, our_server
from benchmarks.levels import run_levels
from benchmarks.load import LevelResult, SingleRequests, Workload
from benchmarks.machine import describe_machine
from benchmarks.report import plot_levels, print_levels, write_json
from benchmarks.server_stats import scrape

# CPU: batch 16 is this network's best in-process batch size (32 is slower), and padding would only
# add work, so no allowed_batch_sizes (the signatures never retrace for a new batch size).
CPU_MAX_BATCH_SIZE = 16
CPU_BATCHING_FLAGS = (
    "--enable_batching=true", f"--max_batch_size={CPU_MAX_BATCH_SIZE}", "--num_batch_threads=1",
    "--batch_timeout_micros=1000",
)
# The overload's queue bound: 64 requests (one image each) in the server at once, whether decoding, queued or
# in the running batch. An accepted request then waits at most the bound's 64 images: the running batch and
# three more, its own included. TF Serving's `max_enqueued_batches` counts only waiting batches, so under
# sustained overload an accepted request waits the running batch *plus* 64 queued images: measured beside it
# as a second reading.
OVERLOAD_QUEUE_BOUND = 64
OVERLOAD_INFLIGHT_FLAG = f"--max_inflight_requests={OVERLOAD_QUEUE_BOUND}"
OVERLOAD_BATCH_QUEUE_FLAG = f"--max_enqueued_batches={OVERLOAD_QUEUE_BOUND // CPU_MAX_BATCH_SIZE}"
LONE_REQUEST_PAIRS_PER_ROUND = 40  # about 7 s of pairs per round at 80 ms a call
TRIVIAL_FLAGS = ("--enable_batching=true", "--max_batch_size=64", "--num_batch_threads=1")
# One server's protocols against each other on the same payload, A then B: B ÷ A.
PROTOCOL_PAIRS = {
    "grpc_vs_rest": ("tfs-grpc", "tfs-rest"),
    "kserve_grpc_vs_kserve_http": ("kserve-grpc", "kserve-http"),
    "rest_vs_kserve_http_json": ("tfs-rest", "kserve-http-json"),
}
# `--max_batch_size=auto` against the fixed sizes its timed curve cannot tell apart on this CPU.
AUTO_FIXED_SIZES = (16, 32)
AUTO_MIN_BLOCK_S = 10.0


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
    started = time.time()
    corpus = jpeg_corpus(64)
    inception = ensure_export(args.models / "inception", "--seed", "0")
    tiny = ensure_export(args.models / "tiny", "--model", "tiny")
    report: dict[str, Any] = {
        "what": "python -m benchmarks suite: every figure of the README and docs/performance.md in one run",
        "machine": describe_machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "corpus": f"{len(corpus)} JPEGs, mixed sizes", "duration_s": args.duration, "rounds": args.rounds,
        "batching_flags": list(CPU_BATCHING_FLAGS),
    }
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

        _log(f"interleaved ({rounds} rounds): in-process batch {in_process.best.batch_size} vs server c=32")
        throughput = alternate(
            lambda: local.measure(in_process.best.batch_size, block_s).images_per_s,
            lambda: server_block(server.target, jpeg_load, 32, block_s, block_warmup_s).images_per_s,
            rounds, "ratio",
        )
        # The in-process limit every ratio uses: the interleaved blocks' median, which a slow minute at the
        # start of the run (the table's single pass) cannot skew.
        limit = statistics.median(throughput.baseline)
        _log(f"REST, interleaved ({rounds} rounds): in-process batch {in_process.best.batch_size} vs REST c=32")
        rest_jpeg_load = Workload.encoded_images("inception", corpus, protocol="tfs-rest")
        rest_inception = alternate(
            lambda: local.measure(in_process.best.batch_size, block_s).images_per_s,
            lambda: server_block(server.rest_target, rest_jpeg_load, 32, block_s, block_warmup_s).images_per_s,
            rounds, "ratio",
        )
        pairs = LONE_REQUEST_PAIRS_PER_ROUND * rounds
        _log(f"paired ({pairs} pairs): in-process batch 1 vs a lone server request, same image")
        with SingleRequests(server.target, jpeg_load) as lone:
            lone_request = paired(local.time_one, lone.latency_ms, pairs, warmup_pairs=4)
        _log("our server, batching off")
        with our_server(inception.parent, "inception", "--enable_batching=false") as unbatched:
            batching_off = _levels(unbatched.target, jpeg_load, [1, 64], args, unbatched.metrics_url)
            _log(f"interleaved ({rounds} rounds): batching off vs on at c=64")
            batching_gain = alternate(
                lambda: server_block(unbatched.target, jpeg_load, 64, block_s, block_warmup_s).images_per_s,
                lambda: server_block(server.target, jpeg_load, 64, block_s, block_warmup_s).images_per_s,
                rounds, "ratio",
            )
        rss_after_run = scrape(server.metrics_url).rss_bytes
    del local  # its TensorFlow graph and buffers are not needed any more

    # The overload on servers of their own, so the levels above (and any --concurrency above 64) are never refused.
    overload_rate = 10 * sustainable
    overload, rss_after_overload = _overload(inception, jpeg_load, overload_rate, args, OVERLOAD_INFLIGHT_FLAG)
    overload_batch_queue, _ = _overload(inception, jpeg_load, overload_rate, args, OVERLOAD_BATCH_QUEUE_FLAG)
    goodput = run_goodput(
        inception, "inception", jpeg_load, CPU_BATCHING_FLAGS, duration_s=args.duration, warmup_s=args.warmup
    )

    pixel_load = Workload.pixels("tiny", 32, 32)
    _log("trivial model: our server and the floor server")
    with our_server(tiny.parent, "tiny", *TRIVIAL_FLAGS) as ours, floor_server() as floor:
        trivial_ours = _levels(ours.target, pixel_load, [1, 64], args, ours.metrics_url)
        trivial_floor = _levels(floor.target, pixel_load, [1, 64], args, None)
        trivial_s = max(args.duration / 4, 1)

        def trivial_block(target: str, load: Workload, clients: int) -> Any:
            return server_block(target, load, clients, trivial_s, 0.5)

        _log(f"interleaved ({2 * rounds} rounds): floor vs ours at c=64 and c=1")
        floor_c64 = alternate(
            lambda: trivial_block(floor.target, pixel_load, 64).requests_per_s,
            lambda: trivial_block(ours.target, pixel_load, 64).requests_per_s,
            2 * rounds, "ratio",
        )
        floor_c1 = alternate(
            lambda: trivial_block(floor.target, pixel_load, 1).percentile(50) or 0.0,
            lambda: trivial_block(ours.target, pixel_load, 1).percentile(50) or 0.0,
            2 * rounds, "difference",
        )
        protocols = {}
        for name, (a, b) in PROTOCOL_PAIRS.items():
            _log(f"interleaved ({2 * rounds} rounds): {a} vs {b}, trivial model, c=64")
            load_a, load_b = (Workload.pixels("tiny", 32, 32, protocol=protocol) for protocol in (a, b))
            target_a, target_b = (ours.target if "grpc" in protocol else ours.rest_target for protocol in (a, b))
            protocols[name] = alternate(
                lambda: trivial_block(target_a, load_a, 64).requests_per_s,
                lambda: trivial_block(target_b, load_b, 64).requests_per_s,
                2 * rounds, "ratio",
            )

    _log("JSON bodies: orjson against Python's parser")
    json_parsing = measure_json_parsing()

    auto_batch: dict[str, Any] | None = None
    if args.auto_starts:
        # At 32 clients a batch takes about two seconds on two cores: a block must hold several of them for
        # the few-percent differences between sizes to rise above where a block's batches happen to fall.
        auto_batch = run_auto_versus_fixed(
            inception, "inception", jpeg_load, fixed_sizes=AUTO_FIXED_SIZES, starts=args.auto_starts,
            rounds=max(rounds - 1, 2), block_s=max(args.duration, AUTO_MIN_BLOCK_S), warmup_s=block_warmup_s,
        )

    bf16: dict[str, Any] | None = None
    if not args.skip_bf16:
        bf16 = _bf16(args, corpus, inception, limit)

    print_levels("Inception-v3, batching on", batching_on, limit)
    print_levels("Inception-v3, batching off", batching_off, limit)
    print_levels(f"overload (open loop, 10x sustainable), {OVERLOAD_INFLIGHT_FLAG}", [overload], limit)
    print_levels(f"overload (open loop, 10x sustainable), {OVERLOAD_BATCH_QUEUE_FLAG}", [overload_batch_queue], limit)
    print_cases(goodput)
    print_levels("trivial model: ours", trivial_ours)
    print_levels("trivial model: floor server", trivial_floor)

    # The overload's bound: the queue bound's images plus one full batch, at the in-process limit.
    overload_bound_s = (OVERLOAD_QUEUE_BOUND + CPU_MAX_BATCH_SIZE) / limit
    interleaved = {
        "inprocess_best_vs_server_c32_images_per_s": throughput,
        "inprocess_batch1_vs_lone_server_request_ms": lone_request,
        "batching_off_vs_on_c64_images_per_s": batching_gain,
        "floor_vs_ours_trivial_c64_requests_per_s": floor_c64,
        "floor_vs_ours_trivial_c1_p50_ms": floor_c1,
        "inprocess_best_vs_rest_c32_images_per_s": rest_inception,
        **{f"{name}_trivial_c64_requests_per_s": comparison for name, comparison in protocols.items()},
    }
    served_batch = overload.mean_batch_size or CPU_MAX_BATCH_SIZE
    figures = {
        "in_process_limit_images_per_s": limit,
        "inception_c32_over_in_process": throughput.median,
        "lone_request_p50_minus_in_process_ms": lone_request.difference_of_medians,
        "lone_request_p50_ms": statistics.median(lone_request.candidate),
        "lone_request_median_paired_difference_ms": lone_request.median,
        "batching_on_over_off_c64": batching_gain.median,
        "trivial_c64_ours_over_floor": floor_c64.median,
        "trivial_c1_p50_ms": statistics.median(floor_c1.candidate),
        "trivial_c1_p50_floor_ms": statistics.median(floor_c1.baseline),
        "overload_accepted_p99_s": (overload.percentile(99) or 0) / 1000,
        "overload_bound_s": overload_bound_s,
        "overload_bound_at_served_rate_s": (OVERLOAD_QUEUE_BOUND + served_batch) / (overload.images_per_s or limit),
        "overload_batch_queue_accepted_p99_s": (overload_batch_queue.percentile(99) or 0) / 1000,
        "overload_refusal_p99_ms": overload.percentile(99, errors=True) or 0.0,
        "rest_inception_c32_over_in_process": rest_inception.median,
        **{f"{name}_trivial_c64": comparison.median for name, comparison in protocols.items()},
    }
    if bf16:
        figures["bf16_server_over_fp32_in_process"] = bf16["server_images_per_s"] / limit
        figures["bf16_in_process_over_fp32_in_process"] = bf16["in_process"]["best_images_per_s"] / limit
    report.update(
        in_process_limit_images_per_s=round(limit, 3),
        batching_on=[l.summary() for l in batching_on],
        batching_off=[l.summary() for l in batching_off],
        overload={"flag": OVERLOAD_INFLIGHT_FLAG, **overload.summary()},
        overload_batch_queue_bound={"flag": OVERLOAD_BATCH_QUEUE_FLAG, **overload_batch_queue.summary()},
        goodput_under_deadlines=goodput,
        trivial_flags=list(TRIVIAL_FLAGS),
        trivial_ours=[l.summary() for l in trivial_ours],
        trivial_floor=[l.summary() for l in trivial_floor],
        interleaved={name: comparison.summary() for name, comparison in interleaved.items()},
        json_parsing=json_parsing,
        auto_batch_size=auto_batch,
        bf16=bf16,
        server_rss_mb={
            "after_warmup": _mb(rss_after_warmup),
            "after_run": _mb(rss_after_run),
            "overload_server_after_overload": _mb(rss_after_overload),
        },
        figures={name: round(float(value), 4) for name, value in figures.items()},
        wall_s=round(time.time() - started),
    )
    write_json(args.out / "suite.json", report)
    plot_levels(
        args.out / "throughput_latency.png",
        {"batching on": batching_on, "batching off": batching_off},
        limit,
        "Inception-v3 on this machine: gRPC Predict, JPEG inputs",
    )
    for name, value in report["figures"].items():
        print(f"{name:48s} {value:10.3f}")
    _log(f"wrote {args.out / 'suite.json'} and {args.out / 'throughput_latency.png'} in {report['wall_s']} s")
    if args.publish:
        from benchmarks.publish import PUBLISHED_PLOT, PUBLISHED_SUITE, publish_pages

        shutil.copyfile(args.out / "suite.json", REPO_ROOT / PUBLISHED_SUITE)
        shutil.copyfile(args.out / "throughput_latency.png", REPO_ROOT / PUBLISHED_PLOT)
        for page in publish_pages(REPO_ROOT):
            _log(f"published {page}")
    return 0


def run_goodput_only(args: argparse.Namespace) -> int:
    """`python -m benchmarks goodput`: the suite's goodput scenario alone, on the same exported model."""
    inception = ensure_export(args.models / "inception", "--seed", "0")
    report = run_goodput(
        inception, "inception", Workload.encoded_images("inception", jpeg_corpus(64)), CPU_BATCHING_FLAGS,
        duration_s=args.duration, warmup_s=args.warmup,
    )
    print_cases(report)
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


def _bf16(args: argparse.Namespace, corpus: list[bytes], fp32_dir: Path, fp32_limit: float) -> dict[str, Any]:
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
