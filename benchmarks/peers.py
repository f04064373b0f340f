"""`python -m benchmarks peers`: the same SavedModel on the servers a user would pick instead of this one.

Triton (through PyTriton, which ships tritonserver) and MLServer each get a virtualenv of their own under
`.peers/`, made once from the package registry, and a small program from `benchmarks/peer_runtimes/` that
loads the same SavedModel directory with `tf.saved_model.load` and calls the same signature, so the model
work is identical and only serving differs. Every server is driven by the same load generator with the same
pre-serialized requests over the protocol all of them speak, KServe v2 gRPC, in alternating ABBA blocks
against this server within one run; each figure is a median of per-round ratios, peer ÷ this server.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import grpc
import numpy as np
import uvloop
from tritonclient.grpc import service_pb2 as kserve_pb2

from benchmarks.compare import alternate_blocks
from benchmarks.corpus import jpeg_corpus
from benchmarks.goodput import figures as goodput_figures
from benchmarks.interleave import Comparison
from benchmarks.launcher import REPO_ROOT, LaunchedServer, free_port, our_server
from benchmarks.load import LevelResult, Workload, closed_loop, deadline_open_loop
from benchmarks.server_stats import ServerSnapshot, scrape

PEERS_DIR = REPO_ROOT / ".peers"
RUNTIMES_DIR = Path(__file__).resolve().parent / "peer_runtimes"
DEFAULT_OUT = Path("docs/benchmarks/peers-2core-cpu.json")
MACHINE = "2-core x86-64 VM with AVX512-BF16, no GPU"
PROTOCOL = "kserve-grpc"
# PyTriton's Python backend stub runs only under a Python whose threading module it was built against:
# Debian's, not a pyenv build. MLServer uses the same interpreter, so both peers run on the same Python.
PEER_PYTHON = "/usr/bin/python3.11"
# Our server's batch timeout (CPU_BATCHING_FLAGS: --batch_timeout_micros=1000), given to MLServer as well:
# MLServer's adaptive batching needs a positive max_batch_time to batch at all.
MLSERVER_MAX_BATCH_TIME_S = 0.001
TRIVIAL_MAX_BATCH_SIZE = 64  # as the suite runs our server on the trivial model
TRIVIAL_FLAGS = ("--enable_batching=true", f"--max_batch_size={TRIVIAL_MAX_BATCH_SIZE}", "--num_batch_threads=1")
THROUGHPUT_CLIENTS = {"inception": 32, "tiny": 64}
CAPACITY_CLIENTS = 32  # as benchmarks/goodput.py measures capacity
GOODPUT_LOAD = 2.0  # offered rate, as a multiple of each server's own capacity
GOODPUT_DEADLINE_BATCHES = 2.0  # each request's gRPC deadline, in that server's batch times
DRAIN_TIMEOUT_S = 300.0
OURS = "batchserve"


@dataclass(frozen=True)
class Peer:
    """A server to compare with: what pip installs into its virtualenv (TensorFlow is added, at our version)."""

    name: str
    description: str
    packages: tuple[str, ...]
    distribution: str  # the package whose version names the peer's release


PEERS: dict[str, Peer] = {
    "triton": Peer("triton", "Triton Inference Server through PyTriton (Python backend)",
                   ("nvidia-pytriton==0.7.0",), "nvidia-pytriton"),
    # uvloop 0.22 and later refuse asyncio.get_event_loop() before a loop exists, which MLServer 1.7's
    # inference workers call on start: with it, every worker dies and is restarted in a loop.
    "mlserver": Peer("mlserver", "MLServer with a custom runtime (an mlserver.MLModel subclass)",
                     ("mlserver==1.7.1", "uvloop<0.22"), "mlserver"),
}


@dataclass(frozen=True)
class ModelSetup:
    """One model of the comparison: its exported directory, signature, batch size and our server's flags."""

    name: str
    version_dir: Path
    signature: str
    max_batch_size: int
    our_flags: tuple[str, ...]


def add_peers_parser(commands: argparse._SubParsersAction) -> None:
    """The `peers` subcommand's options."""
    peers = commands.add_parser(
        "peers", help="the same SavedModel on Triton (PyTriton) and MLServer against this server, alternating "
        "ABBA blocks over KServe v2 gRPC; prints peer ÷ this server",
    )
    peers.add_argument("--peers", type=_peer_list, default=list(PEERS),
                       help=f"comma-separated, from {','.join(PEERS)} (default: all)")
    peers.add_argument("--rounds", type=int, default=4, help="ABBA rounds per figure (default 4)")
    peers.add_argument("--duration", type=float, default=6.0, help="measured seconds per block (default 6)")
    peers.add_argument("--warmup", type=float, default=5.0,
                       help="unmeasured seconds before each Inception block at 32 clients, which fills the "
                       "queue first (default 5); other blocks warm up for 1 s")
    peers.add_argument("--models", type=Path, default=Path("models/bench"), help="exported models are cached here")
    peers.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON report (default {DEFAULT_OUT})")
    peers.add_argument("--skip-install", action="store_true",
                       help="use the virtualenvs under .peers/ as they are; fail if one is missing")


def _peer_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"peers must be among {', '.join(PEERS)}; got {text!r}")
    return names


# --- virtualenvs -----------------------------------------------------------------------------------------


def requirements(peer: Peer, tensorflow_version: str) -> list[str]:
    """What pip installs for `peer`: its packages and the TensorFlow release our server runs."""
    return [*peer.packages, f"tensorflow=={tensorflow_version}"]


def peer_python(peer: Peer) -> Path:
    return PEERS_DIR / peer.name / "bin" / "python"


def ensure_venv(peer: Peer, tensorflow_version: str, skip_install: bool = False) -> Path:
    """The peer's Python, its virtualenv made and installed once; a changed requirement list reinstalls."""
    venv = PEERS_DIR / peer.name
    marker = venv / ".requirements"
    wanted = "\n".join(requirements(peer, tensorflow_version))
    if marker.is_file() and marker.read_text() == wanted:
        return peer_python(peer)
    if skip_install:
        if peer_python(peer).is_file():
            return peer_python(peer)
        raise RuntimeError(f"{venv} does not exist; run without --skip-install to create it")
    _log(f"{peer.name}: creating {venv} with {PEER_PYTHON} and installing {' '.join(requirements(peer, tensorflow_version))}")
    log_path = PEERS_DIR / f"{peer.name}-install.log"
    PEERS_DIR.mkdir(exist_ok=True)
    with log_path.open("w") as log:
        for command in ([PEER_PYTHON, "-m", "venv", str(venv)],
                        [str(peer_python(peer)), "-m", "pip", "install", *requirements(peer, tensorflow_version)]):
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
                tail = "".join(log_path.read_text().splitlines(keepends=True)[-20:])
                raise RuntimeError(f"{shlex.join(command)} failed:\n{tail}")
    marker.write_text(wanted)
    return peer_python(peer)


def installed_versions(python: Path, distributions: Sequence[str]) -> dict[str, str | None]:
    """Versions of `distributions` in another interpreter's environment, without importing them."""
    code = ("import json, sys\nfrom importlib import metadata\nout = {}\nfor name in sys.argv[1:]:\n"
            "    try:\n        out[name] = metadata.version(name)\n    except metadata.PackageNotFoundError:\n"
            "        out[name] = None\nprint(json.dumps(out))")
    result = subprocess.run([str(python), "-c", code, *distributions], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


# --- peer servers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ports:
    grpc: int
    http: int
    metrics: int

    @classmethod
    def free(cls) -> "Ports":
        return cls(free_port(), free_port(), free_port())


def triton_command(python: Path, setup: ModelSetup, ports: Ports) -> list[str]:
    """The PyTriton program's command line: Triton's dynamic batcher with its default queue delay (0)."""
    return [
        str(python), str(RUNTIMES_DIR / "triton_savedmodel.py"), f"--model-dir={setup.version_dir.resolve()}",
        f"--model-name={setup.name}", f"--signature={setup.signature}", f"--max-batch-size={setup.max_batch_size}",
        "--max-queue-delay-us=0", f"--grpc-port={ports.grpc}", f"--http-port={ports.http}",
        f"--metrics-port={ports.metrics}",
    ]


def mlserver_settings(setup: ModelSetup, ports: Ports) -> tuple[dict[str, Any], dict[str, Any]]:
    """MLServer's settings.json and the model's model-settings.json: adaptive batching up to the same batch
    size, one inference worker (MLServer's default), the SavedModel runtime of peer_runtimes/."""
    settings = {
        "debug": False, "host": "127.0.0.1", "http_port": ports.http, "grpc_port": ports.grpc,
        "metrics_port": ports.metrics, "parallel_workers": 1, "load_models_at_startup": True,
    }
    model_settings = {
        "name": setup.name, "implementation": "mlserver_savedmodel.SavedModelRuntime",
        "max_batch_size": setup.max_batch_size, "max_batch_time": MLSERVER_MAX_BATCH_TIME_S,
        "parameters": {"uri": str(setup.version_dir.resolve()), "extra": {"signature": setup.signature}},
    }
    return settings, model_settings


def start_peer(peer: Peer, python: Path, setup: ModelSetup) -> tuple[LaunchedServer, dict[str, Any]]:
    """The peer serving `setup`, ready for requests; and the configuration it was given."""
    ports = Ports.free()
    if peer.name == "triton":
        command, env = triton_command(python, setup, ports), {}
        config: dict[str, Any] = {"command": _relative_command(command), "max_batch_size": setup.max_batch_size,
                                  "dynamic_batching": {"max_queue_delay_microseconds": 0}, "instance_count": 1}
    else:
        settings, model_settings = mlserver_settings(setup, ports)
        repository = PEERS_DIR / "mlserver-repository"
        (repository / setup.name).mkdir(parents=True, exist_ok=True)
        for stale in repository.glob("*/model-settings.json"):
            stale.unlink()
        (repository / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        (repository / setup.name / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
        command = [str(python.parent / "mlserver"), "start", str(repository)]
        env = {"PYTHONPATH": str(RUNTIMES_DIR)}
        config = {"settings.json": settings, "model-settings.json": {
            **model_settings, "parameters": {**model_settings["parameters"], "uri": _relative(setup.version_dir)}}}
    server = LaunchedServer(command, env=env, wait=False, grpc_port=ports.grpc, own_process_group=True)
    config["metrics_port"] = ports.metrics
    try:
        wait_model_ready(server, setup.name)
        if peer.name == "triton":
            config["served_config"] = _triton_model_config(ports.http, setup.name)
    except BaseException:
        server.stop()
        raise
    return server, config


def wait_model_ready(server: LaunchedServer, model: str, timeout: float = 600.0) -> None:
    """Poll KServe v2 ModelReady until the model answers; a server that exits first fails with its log."""
    deadline = time.monotonic() + timeout
    request = kserve_pb2.ModelReadyRequest(name=model).SerializeToString()
    with grpc.insecure_channel(server.target) as channel:
        ready = channel.unary_unary("/inference.GRPCInferenceService/ModelReady",
                                    response_deserializer=kserve_pb2.ModelReadyResponse.FromString)
        while time.monotonic() < deadline and server.process.poll() is None:
            try:
                if ready(request, timeout=2.0).ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(1.0)
    raise RuntimeError(f"{model} did not become ready on {server.target}:\n" + "".join(server.log_lines[-60:]))


def server_metadata(target: str) -> dict[str, str]:
    """KServe v2 ServerMetadata: the server's own name and version."""
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ServerMetadata",
                                   response_deserializer=kserve_pb2.ServerMetadataResponse.FromString)
        response = call(kserve_pb2.ServerMetadataRequest().SerializeToString(), timeout=10.0)
    return {"name": response.name, "version": response.version}


def _triton_model_config(http_port: int, model: str) -> dict[str, Any]:
    """The configuration Triton actually serves the model with (PyTriton fills in what it was not given)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}/config", timeout=10) as response:
        served = json.load(response)
    keep = ("max_batch_size", "input", "output", "dynamic_batching", "instance_group", "backend")
    return {key: served[key] for key in keep if key in served}


def _triton_counts(metrics_port: int | None) -> tuple[float, float] | None:
    """Triton's (requests, model executions) so far, from its Prometheus endpoint: their ratio over a block
    is its mean batch size."""
    if not metrics_port:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    totals = {"nv_inference_request_success": 0.0, "nv_inference_exec_count": 0.0}
    for family in text_string_to_metric_families(text):  # counters' samples are named <family>_total
        if family.name in totals:
            totals[family.name] += sum(sample.value for sample in family.samples)
    return totals["nv_inference_request_success"], totals["nv_inference_exec_count"]


# --- measurement -----------------------------------------------------------------------------------------


class Side:
    """One server under measurement: its target, and how to read its mean batch size around a block."""

    def __init__(self, name: str, server: LaunchedServer, kind: str, metrics_port: int | None = None) -> None:
        self.name, self.server, self.kind, self.metrics_port = name, server, kind, metrics_port

    def _counters(self) -> Any:
        if self.kind == OURS:
            return scrape(self.server.metrics_url)
        if self.kind == "triton":
            return _triton_counts(self.metrics_port)
        return None

    def _mean_batch(self, before: Any, after: Any) -> float | None:
        if self.kind == OURS:
            return after.mean_batch_size_since(before)
        if before and after and after[1] > before[1]:
            return (after[0] - before[0]) / (after[1] - before[1])
        return None

    def closed(self, workload: Workload, clients: int, seconds: float, warmup: float) -> LevelResult:
        before = self._counters()
        level = uvloop.run(closed_loop(self.server.target, workload, clients, seconds, warmup))
        level.mean_batch_size = self._mean_batch(before, self._counters())
        return level

    def snapshot(self) -> ServerSnapshot:
        return scrape(self.server.metrics_url) if self.kind == OURS else ServerSnapshot()


def drain(target: str, workload: Workload) -> float:
    """Seconds until one more request is answered: a server still working through an overload's queue
    (requests whose callers gave up included) finishes it before the next block starts."""
    started = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        channel.unary_unary(workload.path)(workload.requests[0], timeout=DRAIN_TIMEOUT_S)
    return time.perf_counter() - started


def _answers(target: str, workload: Workload, count: int) -> list[dict[str, np.ndarray]]:
    """The outputs of the workload's first `count` requests, decoded from `raw_output_contents`."""
    from tritonclient.utils import deserialize_bytes_tensor, triton_to_np_dtype

    answers = []
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(workload.path, response_deserializer=kserve_pb2.ModelInferResponse.FromString)
        for request in workload.requests[:count]:
            response = call(request, timeout=120.0)
            outputs = {}
            for output, raw in zip(response.outputs, response.raw_output_contents):
                if output.datatype == "BYTES":
                    value = deserialize_bytes_tensor(raw)
                else:
                    value = np.frombuffer(raw, dtype=triton_to_np_dtype(output.datatype))
                outputs[output.name] = value.reshape(list(output.shape))
            answers.append(outputs)
    return answers


def same_answers(ours: str, peer: str, workload: Workload, count: int = 4) -> dict[str, Any]:
    """Whether both servers answer the first requests alike: the same classes and scores, so the same model
    work is measured."""
    mine, theirs = _answers(ours, workload, count), _answers(peer, workload, count)
    classes_equal = all(np.array_equal(a["classes"], b["classes"]) for a, b in zip(mine, theirs))
    score_difference = max(float(np.max(np.abs(a["scores"] - b["scores"]))) for a, b in zip(mine, theirs))
    return {"requests": count, "classes_equal": classes_equal, "max_score_difference": score_difference,
            "output_shapes": {name: list(value.shape) for name, value in theirs[0].items()}}


def _closed_comparison(
    ours: Side, peer: Side, workload: Workload, clients: int, seconds: float, warmup: float, rounds: int,
    figure: Callable[[LevelResult], float],
) -> dict[str, Any]:
    """ABBA blocks of both servers at `clients`; `figure` of each block, peer ÷ ours per round."""
    _log(f"  {ours.name} vs {peer.name}: {rounds} rounds at c={clients}")
    ours_blocks, peer_blocks = alternate_blocks(
        lambda: ours.closed(workload, clients, seconds, warmup),
        lambda: peer.closed(workload, clients, seconds, warmup), rounds,
    )
    return _comparison(ours_blocks, peer_blocks, figure)


def _comparison(ours_blocks: list[LevelResult], peer_blocks: list[LevelResult],
                figure: Callable[[LevelResult], float]) -> dict[str, Any]:
    comparison = Comparison([figure(b) for b in ours_blocks], [figure(b) for b in peer_blocks], "ratio")
    ratios = comparison.per_round
    return {
        "ours": [round(v, 3) for v in comparison.baseline],
        "peer": [round(v, 3) for v in comparison.candidate],
        "ratio": [round(v, 3) for v in ratios],
        "median_ratio": round(comparison.median, 3),
        "spread": [round(min(ratios), 3), round(max(ratios), 3)],
        "ours_median": round(statistics.median(comparison.baseline), 3),
        "peer_median": round(statistics.median(comparison.candidate), 3),
        "blocks": {"ours": [b.summary() for b in ours_blocks], "peer": [b.summary() for b in peer_blocks]},
    }


def _goodput_comparison(
    ours: Side, peer: Side, workload: Workload, max_batch_size: int, seconds: float, warmup: float, rounds: int,
) -> dict[str, Any]:
    """Per round and server: its capacity (a closed loop at CAPACITY_CLIENTS), then at once an open loop at
    GOODPUT_LOAD × that capacity, every request with a deadline of GOODPUT_DEADLINE_BATCHES of its batch
    times (max batch size ÷ capacity); goodput ÷ capacity, peer ÷ ours. Capacity is taken seconds before
    the overload it scales, so the machine's drift between them stays small."""
    results: dict[str, list[dict[str, Any]]] = {ours.name: [], peer.name: []}

    def block(side: Side) -> None:
        capacity = side.closed(workload, CAPACITY_CLIENTS, seconds, warmup).requests_per_s
        if not capacity:
            raise RuntimeError(f"{side.name} answered nothing in a {CAPACITY_CLIENTS}-client block")
        batch_s = max_batch_size / capacity
        deadline_s, rate = GOODPUT_DEADLINE_BATCHES * batch_s, GOODPUT_LOAD * capacity
        before = side.snapshot()
        level = uvloop.run(deadline_open_loop(side.server.target, workload, rate, seconds, deadline_s))
        row = {"capacity_requests_per_s": round(capacity, 3), "batch_seconds": round(batch_s, 4),
               **goodput_figures(level, deadline_s, capacity, before, side.snapshot())}
        row["drain_s"] = round(drain(side.server.target, workload), 3)
        results[side.name].append(row)

    _log(f"  {ours.name} vs {peer.name}: goodput, {rounds} rounds at {GOODPUT_LOAD:g}x capacity")
    alternate_blocks(lambda: block(ours), lambda: block(peer), rounds)  # type: ignore[arg-type,return-value]
    return goodput_summary(results[ours.name], results[peer.name])


def goodput_summary(ours_rows: list[dict[str, Any]], peer_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' goodput ÷ capacity on each side, peer ÷ ours per round, and their medians."""
    ours_values = [row["goodput_over_capacity"] for row in ours_rows]
    peer_values = [row["goodput_over_capacity"] for row in peer_rows]
    ratios = [p / o if o else float("nan") for o, p in zip(ours_values, peer_values)]
    finite = [r for r in ratios if r == r]
    return {
        "load_over_capacity": GOODPUT_LOAD,
        "deadline_batch_times": GOODPUT_DEADLINE_BATCHES,
        "capacity_requests_per_s": {
            side: round(statistics.median(row["capacity_requests_per_s"] for row in rows), 3)
            for side, rows in (("ours", ours_rows), ("peer", peer_rows))
        },
        "ours": ours_values,
        "peer": peer_values,
        "ratio": [round(r, 3) for r in ratios],
        "spread": [round(min(finite), 3), round(max(finite), 3)] if finite else None,
        "ours_median": round(statistics.median(ours_values), 3),
        "peer_median": round(statistics.median(peer_values), 3),
        "median_ratio": _ratio(statistics.median(peer_values), statistics.median(ours_values)),
        "rounds": {"ours": ours_rows, "peer": peer_rows},
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def measure_inception(ours: Side, peer: Side, workload: Workload, setup: ModelSetup, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput at 32 clients, a lone request's p50, and goodput at 2x overload with deadlines."""
    clients = THROUGHPUT_CLIENTS["inception"]
    throughput = _closed_comparison(ours, peer, workload, clients, args.duration, args.warmup, args.rounds,
                                    lambda level: level.images_per_s)
    lone = _closed_comparison(ours, peer, workload, 1, args.duration, 1.0, args.rounds,
                              lambda level: level.percentile(50) or float("nan"))
    goodput = _goodput_comparison(ours, peer, workload, setup.max_batch_size, args.duration, args.warmup,
                                  args.rounds)
    return {f"throughput_c{clients}_images_per_s": throughput, "lone_request_p50_ms": lone,
            "goodput_2x_capacity_deadline_2_batch_times": goodput}


def measure_trivial(ours: Side, peer: Side, workload: Workload, args: argparse.Namespace) -> dict[str, Any]:
    """p50 at one client and throughput at 64, in shorter blocks: a request takes milliseconds."""
    seconds = max(args.duration / 2, 2.0)
    clients = THROUGHPUT_CLIENTS["tiny"]
    return {
        "p50_c1_ms": _closed_comparison(ours, peer, workload, 1, seconds, 1.0, args.rounds,
                                        lambda level: level.percentile(50) or float("nan")),
        f"throughput_c{clients}_requests_per_s": _closed_comparison(
            ours, peer, workload, clients, seconds, 1.0, args.rounds, lambda level: level.requests_per_s),
    }


def workloads(corpus: Sequence[bytes]) -> dict[str, Workload]:
    """The same requests for every server. Images travel as BYTES [1, 1]: Triton needs a dimension per batch
    item, and our server and the MLServer runtime take [N, 1] as well as [N]."""
    images = [np.array([[image]], dtype=object) for image in corpus]
    return {
        "inception": Workload.tensors("inception", "images", images, protocol=PROTOCOL, name="jpeg"),
        "tiny": Workload.pixels("tiny", 32, 32, protocol=PROTOCOL),
    }


WORKLOAD_DESCRIPTIONS = {
    "inception": {"signature": "predict_images", "input": "images", "datatype": "BYTES", "shape": [1, 1],
                  "payload": "one JPEG per request from a corpus of 64 (six sizes, 299x299 to 800x600)",
                  "outputs": {"classes": "BYTES [1, 5]", "scores": "FP32 [1, 5]"}},
    "tiny": {"signature": "classify_pixels", "input": "pixels", "datatype": "FP32", "shape": [1, 32, 32, 3],
             "payload": "16 random float tensors", "outputs": {"classes": "BYTES [1, 5]", "scores": "FP32 [1, 5]"}},
}


# --- the command -----------------------------------------------------------------------------------------


def run_peers(args: argparse.Namespace) -> int:
    """Measure each peer against our server on both models and write the report."""
    from benchmarks.suite import CPU_BATCHING_FLAGS, CPU_MAX_BATCH_SIZE, ensure_export

    started = time.monotonic()
    tensorflow_version = metadata.version("tensorflow")
    setups = [
        ModelSetup("inception", ensure_export(args.models / "inception", "--seed", "0"), "predict_images",
                   CPU_MAX_BATCH_SIZE, tuple(CPU_BATCHING_FLAGS)),
        ModelSetup("tiny", ensure_export(args.models / "tiny", "--model", "tiny"), "classify_pixels",
                   TRIVIAL_MAX_BATCH_SIZE, TRIVIAL_FLAGS),
    ]
    loads = workloads(jpeg_corpus(64))
    report = new_report(args, setups, tensorflow_version)
    pythons: dict[str, Path] = {}
    for name in args.peers:
        peer = PEERS[name]
        try:
            pythons[name] = ensure_venv(peer, tensorflow_version, args.skip_install)
            versions = installed_versions(pythons[name], [peer.distribution, "tensorflow", "numpy", "grpcio"])
            report["servers"][name]["packages"] = versions
        except Exception as error:  # noqa: BLE001 - the other peer is still measured
            _fail(report, name, "install", error)
    for setup in setups:
        active = [name for name in args.peers if name in pythons]
        if not active:
            break
        _log(f"{setup.name}: our server ({' '.join(setup.our_flags)})")
        with our_server(setup.version_dir.parent, setup.name, *setup.our_flags) as server:
            report["servers"][OURS]["metadata"] = server_metadata(server.target)
            ours = Side(OURS, server, OURS)
            for name in active:
                peer = PEERS[name]
                _log(f"{setup.name}: starting {peer.description}")
                try:
                    peer_server, config = start_peer(peer, pythons[name], setup)
                except Exception as error:  # noqa: BLE001
                    _fail(report, name, f"start ({setup.name})", error)
                    continue
                try:
                    report["servers"][name]["metadata"] = server_metadata(peer_server.target)
                    report["servers"][name]["configs"][setup.name] = config
                    side = Side(name, peer_server, name, config.get("metrics_port"))
                    report["results"].setdefault(name, {})
                    report["same_answers"].setdefault(name, {})[setup.name] = same_answers(
                        server.target, peer_server.target, loads[setup.name])
                    if setup.name == "inception":
                        result = measure_inception(ours, side, loads["inception"], setup, args)
                    else:
                        result = measure_trivial(ours, side, loads["tiny"], args)
                    report["results"][name][setup.name] = result
                except Exception as error:  # noqa: BLE001
                    _fail(report, name, f"measure ({setup.name})", error, peer_server.log_lines[-40:])
                finally:
                    peer_server.stop()
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    report["summary"] = summary_rows(report["results"])
    write_report(args.out, report)
    print_summary(report)
    _log(f"wrote {args.out} in {report['wall_seconds']:.0f} s")
    return 1 if report["failures"] else 0


def new_report(args: argparse.Namespace, setups: Sequence[ModelSetup], tensorflow_version: str) -> dict[str, Any]:
    """The report before any measurement: what is compared, how, and with which settings."""
    servers: dict[str, Any] = {
        OURS: {"packages": {"tensorflow": tensorflow_version, "grpcio": _version("grpcio"),
                            "batchserve": _version("batchserve")},
               "configs": {setup.name: list(setup.our_flags) for setup in setups}},
    }
    for name in args.peers:
        peer = PEERS[name]
        servers[name] = {"description": peer.description, "python": PEER_PYTHON,
                         "requirements": requirements(peer, tensorflow_version), "configs": {}}
    return {
        "command": shlex.join(["python", "-m", "benchmarks", "peers",
                               *(sys.argv[2:] if sys.argv[1:2] == ["peers"] else [])]),
        "machine": MACHINE,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": None,
        # The machine's other work shows here: the servers and the load generator alone keep it near 2.
        "load_average_1min": {"start": round(os.getloadavg()[0], 2), "end": None},
        "ratios": "peer ÷ this server, per round; the figure is the median of the rounds",
        "method": (f"ABBA blocks (this server first in even rounds), {args.rounds} rounds per figure, "
                   f"{args.duration:g} s measured per block (trivial model: {max(args.duration / 2, 2.0):g} s); "
                   "all servers driven by benchmarks/load.py with the same pre-serialized requests"),
        "protocol": PROTOCOL,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "models": {setup.name: {**WORKLOAD_DESCRIPTIONS[setup.name], "saved_model": _relative(setup.version_dir),
                                "max_batch_size": setup.max_batch_size} for setup in setups},
        "goodput": {"capacity": f"requests/s of a {CAPACITY_CLIENTS}-client closed-loop block on the same server, "
                                "just before each open-loop block",
                    "load": f"open loop at {GOODPUT_LOAD:g}x that capacity",
                    "deadline": f"a gRPC deadline of {GOODPUT_DEADLINE_BATCHES:g} batch times "
                                "(max batch size ÷ capacity)",
                    "goodput": "answers that arrived within their deadline, per second, ÷ capacity",
                    "around_window": "the load runs, unmeasured, for one deadline before the measured window and "
                                     "one after it, so the queue is at its steady depth throughout the window",
                    "between_blocks": "one more request is sent and answered (drain_s) before the next block"},
        "servers": servers,
        "same_answers": {},
        "results": {},
        "failures": {},
    }


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per peer and figure: our median, the peer's, and the median per-round ratio with its spread."""
    rows = []
    for peer, models in results.items():
        for model, figures in models.items():
            for figure, values in figures.items():
                rows.append({"peer": peer, "model": model, "figure": figure, "ours": values["ours_median"],
                             "peer_value": values["peer_median"], "peer_over_ours": values["median_ratio"],
                             "spread": values.get("spread")})
    return rows


def print_summary(report: dict[str, Any]) -> None:
    print(f"{'peer':9s} {'model':10s} {'figure':44s} {'ours':>9s} {'peer':>9s} {'peer÷ours':>10s}  rounds")
    for row in report["summary"]:
        spread = row["spread"]
        rounds = f"{spread[0]:.3f}–{spread[1]:.3f}" if spread else "-"
        ratio = "-" if row["peer_over_ours"] is None else f"{row['peer_over_ours']:.3f}"
        print(f"{row['peer']:9s} {row['model']:10s} {row['figure']:44s} {row['ours']:9.3f} {row['peer_value']:9.3f} "
              f"{ratio:>10s}  {rounds}")
    for peer, failures in report["failures"].items():
        for failure in failures:
            print(f"{peer}: FAILED at {failure['stage']}: {failure['error'].splitlines()[0]}")


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Strict JSON: a ratio over zero (NaN) is written as null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _fail(report: dict[str, Any], peer: str, stage: str, error: BaseException, log: Sequence[str] = ()) -> None:
    text = f"{type(error).__name__}: {error}"
    _log(f"{peer}: {stage} failed: {text}")
    report["failures"].setdefault(peer, []).append(
        {"stage": stage, "error": text, "log_tail": "".join(log)[-4000:] or None})


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _relative(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(resolved)


def _relative_command(command: Sequence[str]) -> list[str]:
    root = f"{REPO_ROOT}/"
    return [part.replace(root, "") for part in command]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
