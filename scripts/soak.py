"""Soak: serve at 80% of the measured sustainable rate for a long time; report RSS start/end and errors.

    .venv/bin/python scripts/soak.py --seconds 600            # tiny model exported to a temp dir
    .venv/bin/python scripts/soak.py --model_base_path models/inception --model_name inception

Not part of `make test`. Steps: start the real server (`python -m service`, batching on) on loopback;
measure the sustainable rate with a closed loop of --concurrency clients for 15 s; then offer 80% of it
open-loop (Poisson arrivals) for --seconds, sampling the server's RSS every 10 s. Exit code 1 if any
request failed or RSS grew more than 10% from the first sample after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import grpc  # noqa: E402
from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: E402

from imaging import mixed_corpus  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from tf_serving_client import predict_request  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def closed_loop(stub, requests, concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < stop:
            await stub.Predict(requests[i % len(requests)], timeout=30)
            done += 1
            i += concurrency

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / seconds


async def soak(address: str, pid: int, model: str, seconds: float, concurrency: int) -> int:
    requests = [predict_request(model, [image]) for image in mixed_corpus(24)]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        await closed_loop(stub, requests, concurrency, 5)  # warm-up
        sustainable = await closed_loop(stub, requests, concurrency, 15)
        rate = 0.8 * sustainable
        print(f"sustainable ~{sustainable:.0f} req/s; soaking at {rate:.0f} req/s for {seconds:.0f} s", flush=True)
        rss = [(0.0, rss_mib(pid))]
        errors: dict[str, int] = {}
        latencies: list[float] = []
        ok = 0
        rng = random.Random(0)

        async def one(request) -> None:
            nonlocal ok
            started = time.monotonic()
            try:
                await stub.Predict(request, timeout=30)
                ok += 1
                latencies.append(time.monotonic() - started)
            except grpc.RpcError as error:
                errors[error.code().name] = errors.get(error.code().name, 0) + 1

        started = time.monotonic()
        next_at, next_sample, pending = started, started + 10, set()
        while (now := time.monotonic()) < started + seconds:
            if now >= next_sample:
                rss.append((now - started, rss_mib(pid)))
                print(f"  t={now - started:5.0f} s  RSS {rss[-1][1]:.0f} MiB  ok {ok}  errors {sum(errors.values())}",
                      flush=True)
                next_sample += 10
            if now < next_at:
                await asyncio.sleep(next_at - now)
                continue
            task = asyncio.ensure_future(one(requests[rng.randrange(len(requests))]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += rng.expovariate(rate)
        await asyncio.gather(*pending)
        rss.append((time.monotonic() - started, rss_mib(pid)))
    start_rss, end_rss = rss[0][1], rss[-1][1]
    latencies.sort()
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
    growth = (end_rss - start_rss) / start_rss * 100
    print(f"soak: {seconds:.0f} s at {rate:.0f} req/s: {ok} ok, errors {sum(errors.values())} {errors}; "
          f"latency p50 {p50 * 1000:.1f} ms p99 {p99 * 1000:.1f} ms; RSS start {start_rss:.0f} MiB "
          f"end {end_rss:.0f} MiB ({growth:+.1f}%), max {max(r for _, r in rss):.0f} MiB")
    return 1 if errors or growth > 10 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model_base_path", type=Path)
    parser.add_argument("--model_name", default="tiny")
    args, server_flags = parser.parse_known_args()
    base = args.model_base_path
    if base is None:
        from conftest import TINY_LABELS, build_tiny_classifier
        from model_export import export_classifier

        base = Path(tempfile.mkdtemp()) / "tiny"
        export_classifier(build_tiny_classifier(), TINY_LABELS, base, version=1, top_k=5, preprocessing="unit")
    flags = server_flags or ["--enable_batching=true", "--max_batch_size=16"]
    with ServerProcess(base, *flags, model_name=args.model_name) as server:
        code = asyncio.run(soak(server.address, server.process.pid, args.model_name, args.seconds, args.concurrency))
        exit_code = server.stop()
    print(f"server exit code {exit_code}")
    return code or (exit_code != 0)


if __name__ == "__main__":
    sys.exit(main())
