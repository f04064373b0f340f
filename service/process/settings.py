"""All server settings in one typed object, built from `tensorflow_model_server`-style flags and environment.

Precedence, lowest to highest: defaults, the batching parameters file, environment (`BATCHSERVE_<FLAG_NAME>`
upper-case), explicit flags. A variable is a flag given another way, so it overrides the file as the flag would.
Defaults are `tensorflow_model_server`'s wherever a user who swaps binaries and keeps their flags would want
them; docs/operations.md lists each one that differs, with its reason. TF Serving's image variables
`MODEL_NAME` and `MODEL_BASE_PATH` are read by the image's entrypoint (docker/tf_serving_entrypoint.sh), as in
TF Serving, never here: the binary reads no other environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from batching import BatchingParameters, DeadlinePolicy

from service.adapters.admin_access import AdminAccess, parse_admin_header
from service.models.batching_config import asks_for_auto_batch_size, parse_batching_parameters
from service.models.model_config import ModelSource, parse_model_config_file
from service.process.monitoring_config import parse_monitoring_config_file

ENV_PREFIX = "BATCHSERVE_"
# TF Serving's gRPC message limit (it calls grpc::ServerBuilder::SetMaxMessageSize(INT32_MAX)).
TF_SERVING_MAX_MESSAGE_BYTES = 2**31 - 1

# Flags whose values override the batching parameters file when given explicitly.
_BATCHING_FLAGS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")

# tensorflow_model_server flags with no effect in this server: accepted, so existing command lines start,
# each with one warning naming it. (Threads, retries and caches are managed differently here; TF Lite, TPU,
# XLA, profiler and GPU-memory options do not apply to a CPU TensorFlow SavedModel server.)
TF_SERVING_FLAGS_WITHOUT_EFFECT = (
    "rest_api_num_threads", "rest_api_enable_cors_support", "per_process_gpu_memory_fraction",
    "flush_filesystem_caches", "num_load_threads", "num_unload_threads", "max_num_load_retries",
    "load_retry_interval_micros", "grpc_max_threads", "num_request_iterations_for_warmup",
    "remove_unused_fields_from_bundle_metagraph", "prefer_tflite_model", "num_tflite_pools",
    "num_tflite_interpreters_per_pool", "num_tflite_interpreters",
    "xla_cpu_compilation_enabled", "enable_profiler", "skip_initialize_tpu", "mixed_precision",
    "tensorflow_session_config_file", "thread_pool_factory_config_file",
    "allow_version_labels_for_unavailable_models", "enable_grpc_healthcheck_service",
    "use_tflite_model", "gpu_id", "xla_gpu_compilation_enabled",
)
# tensorflow_model_server flags that would change what is served, or how safely, if honoured; ignoring
# them silently would mislead, so setting one (to anything but its default) stops start-up with a reason.
TF_SERVING_FLAGS_REFUSED = {
    "use_alts_credentials": ("false", "ALTS credentials are not available; use --ssl_config_file or --tls_cert_file"),
    "platform_config_file": ("", "platform configs are not read; use the batching and TensorFlow flags"),
    "enable_per_model_batching_parameters": (
        "false", "per-model batching files are not read; use --batching_parameters_file for every model",
    ),
}


@dataclass(frozen=True)
class ServerSettings:
    """Everything `python -m service` can be told; one place to read every knob."""

    port: int = 8500
    host: str = "0.0.0.0"
    rest_api_port: int = 0  # TF Serving's default: no HTTP port unless asked for
    model_name: str = "default"
    model_base_path: Path | None = None  # required unless --model_config_file names the models
    models: tuple[ModelSource, ...] = ()  # from --model_config_file; empty: model_name/model_base_path
    model_config_file: Path | None = None
    file_system_poll_wait_seconds: float = 1.0  # <= 0: look for versions only at start-up
    enable_batching: bool = False
    batching: BatchingParameters = field(default_factory=BatchingParameters)
    decode_threads: int = 0  # 0: one per CPU core
    max_images_per_request: int = 1024
    grpc_max_message_bytes: int = TF_SERVING_MAX_MESSAGE_BYTES
    # Largest REST request body (413 beyond it); 0: --grpc_max_message_bytes. Not TF Serving's "no limit": parsed
    # JSON takes several times its size, and a few 2 GiB bodies at once would take the process down.
    rest_api_max_body_bytes: int = 64 * 1024 * 1024
    rest_api_idle_timeout_seconds: float = 60.0  # an idle keep-alive REST connection is closed after this
    # 0: unlimited. Behind an L4 load balancer a finite age makes clients reconnect, and so spread over new pods.
    grpc_max_connection_age_ms: int = 0
    grpc_max_connection_age_grace_ms: int = 0  # 0: gRPC's default (unlimited) for in-flight RPCs after GOAWAY
    max_image_pixels: int = 25_000_000  # header-declared pixels per image; 0: no limit
    max_inflight_requests: int = 1024  # inference requests decoding, queued or running; 0: no limit
    batch_execution_timeout_seconds: float = 0.0  # a model call running longer fails its batch; 0: no limit
    # A model stuck (past the execution timeout, no batch completed since) this long fails liveness; 0: never
    stuck_model_liveness_seconds: float = 300.0
    # Requests with a deadline that cannot meet it are refused at once (RESOURCE_EXHAUSTED), never computed.
    refuse_unmeetable_deadlines: bool = True
    deadline_headroom: float = 0.1  # predicted times are stretched by this fraction before the comparison
    ssl_config_file: Path | None = None  # TF Serving's SSLConfig text proto (PEM contents inline)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None  # set: clients must present a certificate it signed (mTLS)
    tensorflow_intra_op_parallelism: int = 0  # 0: TensorFlow's default
    tensorflow_inter_op_parallelism: int = 0
    tensorflow_session_parallelism: int = 0  # both of the above, where they are not set
    grpc_socket_path: str = ""  # also serve gRPC on this Unix socket
    grpc_channel_arguments: tuple[tuple[str, int | str], ...] = ()  # extra gRPC server channel arguments
    rest_api_timeout_in_ms: int = 30_000  # a REST request's deadline; 0: none
    enable_model_warmup: bool = True  # replay assets.extra/tf_serving_warmup_requests at load
    # Classify/Regress/MultiInference also require the signature's method_name (TF Serving's default: false)
    enable_signature_method_name_check: bool = False
    # Predict answers numbers in tensor_content instead of the typed *_val fields (TF Serving's default: false)
    enable_serialization_as_tensor_content: bool = False
    saved_model_tags: tuple[str, ...] = ("serve",)  # the MetaGraph loaded from each SavedModel
    # --max_batch_size=auto: each model's batch size is measured at load (batching.max_batch_size is the
    # size used where it cannot be, e.g. a model without sample inputs)
    auto_batch_size: bool = False
    batch_latency_budget_ms: float = 0.0  # auto: largest batch time allowed; 0: none
    enable_model_config_reload: bool = False  # ModelService.HandleReloadConfigRequest may replace the models
    # Who may call administrative RPCs: callers presenting this metadata header (key, value) ...
    admin_header: tuple[str, str] | None = None
    # ... or a client certificate (mutual TLS) with one of these common / subject alternative names
    admin_client_cert_names: tuple[str, ...] = ()

    @property
    def admin_access(self) -> AdminAccess:
        return AdminAccess(self.admin_header, frozenset(self.admin_client_cert_names))
    model_config_file_poll_wait_seconds: float = 0.0  # re-read --model_config_file this often; 0: never
    prometheus_path: str = ""  # --monitoring_config_file's prometheus_config.path, served beside /metrics
    flags_without_effect: tuple[str, ...] = ()  # TF Serving flags given that do nothing here (warned at start)
    # Fits docker stop's 10 s (and Kubernetes' 30 s) with time left to release the models.
    shutdown_grace_seconds: float = 5.0
    shutdown_delay_seconds: float = 0.0  # NOT_SERVING but still accepting, so load balancers can react
    log_level: str = "INFO"
    log_format: str = "json"  # or "text"
    access_log: bool = False  # one log line per RPC (method, model, status, duration, trace ids)

    @property
    def effective_batching(self) -> BatchingParameters:
        """What the batcher really runs with: size-1 batches when batching is disabled."""
        if self.enable_batching:
            return self.batching
        # Same thread count and the same queue capacity in images as with batching on.
        return BatchingParameters.unbatched(
            num_batch_threads=self.batching.num_batch_threads,
            max_enqueued_batches=self.batching.max_enqueued_items,
        )

    @property
    def intra_op_threads(self) -> int:
        return self.tensorflow_intra_op_parallelism or self.tensorflow_session_parallelism

    @property
    def inter_op_threads(self) -> int:
        return self.tensorflow_inter_op_parallelism or self.tensorflow_session_parallelism

    @property
    def deadline_policy(self) -> DeadlinePolicy:
        return DeadlinePolicy(enabled=self.refuse_unmeetable_deadlines, headroom=self.deadline_headroom)

    @property
    def model_sources(self) -> tuple[ModelSource, ...]:
        """The models to serve: the config file's (then --model_name and --model_base_path are ignored, as in
        TF Serving), or the one named by --model_name/--model_base_path. Raises ValueError when neither is given."""
        if self.models:
            return self.models
        if self.model_base_path is None:
            raise ValueError("no model to serve: give --model_base_path (with --model_name) or --model_config_file")
        return (ModelSource(self.model_name, self.model_base_path),)

    @property
    def effective_decode_threads(self) -> int:
        return self.decode_threads or (os.cpu_count() or 1)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _batch_size_or_auto(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    return _positive_int(text)


def _admin_header(text: str) -> tuple[str, str]:
    try:
        return parse_admin_header(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _tag_set(text: str) -> tuple[str, ...]:
    tags = tuple(tag.strip() for tag in text.split(",") if tag.strip())
    if not tags:
        raise argparse.ArgumentTypeError("name at least one tag, e.g. serve or serve,gpu")
    return tags


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _is_default(value: object, default: str) -> bool:
    text = str(value).strip().lower()
    return text in ("false", "0", "no", "off") if default == "false" else text == default


def _channel_arguments(text: str) -> tuple[tuple[str, int | str], ...]:
    """TF Serving's `--grpc_channel_arguments`: `key=value,key=value`; a value that is an int is passed as one."""
    arguments: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        try:
            arguments.append((key, int(value)))
        except ValueError:
            arguments.append((key, value))
    return tuple(arguments)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def flag_defaults() -> dict[str, object]:
    """Each setting's value when no flag, environment variable or batching file sets it, by flag name.

    The parser itself has no defaults (it must tell what was given from what was not), so `--help` and the
    flag reference in docs/operations.md take them from here: the dataclasses' own defaults."""
    settings, batching = ServerSettings(), BatchingParameters()
    defaults = {item.name: getattr(settings, item.name) for item in dataclasses.fields(settings)}
    defaults.update({item.name: getattr(batching, item.name) for item in dataclasses.fields(batching)})
    defaults.update(batching_parameters_file=None, monitoring_config_file=None)
    return defaults


def describe_default(value: object) -> str:
    """A default as people read it: true / false, 1.5, 67108864 (64 MiB), serve,gpu, none."""
    mib = 1024 * 1024
    if value is None or value == "" or value == ():
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and value >= mib and value % mib == 0:
        return f"{value} ({value // mib} MiB)"
    if isinstance(value, tuple):
        return ",".join(str(part) for part in value)
    return str(value)


class _HelpWithDefaults(argparse.HelpFormatter):
    """`--help` shows each flag's effective default (see flag_defaults)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        defaults = flag_defaults()
        if not action.option_strings or action.dest not in defaults:
            return action.help
        return f"{action.help} (default: {describe_default(defaults[action.dest])})".replace("%", "%%")


def program_name() -> str:
    """The name the server was started by, for usage and error messages: `tensorflow_model_server`,
    `batchserve`, or `python -m service`."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not invoked or invoked in ("-c", "-m") or invoked.endswith(".py"):
        return "python -m service"
    return invoked


def version_text() -> str:
    """`--version`, in the shape of tensorflow_model_server's: the server's version, then TensorFlow's."""
    def installed(*distributions: str) -> str:
        for distribution in distributions:
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
        return "unknown"

    return (
        f"TensorFlow ModelServer: batchserve {installed('batchserve')}\n"
        f"TensorFlow Library: {installed('tensorflow', 'tensorflow-cpu', 'tensorflow-gpu')}"
    )


class PrintVersionAction(argparse.Action):
    """`--version`: prints version_text() as it is (argparse's own version action would re-wrap its lines)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def build_argument_parser() -> argparse.ArgumentParser:
    """Flags named as `tensorflow_model_server`'s, so existing command lines and manifests carry over.

    Help texts are the flag reference in docs/operations.md too (scripts/flag_reference.py renders it): plain
    sentences; 'single quotes' mark literal text (code in the docs); --flags and STATUS_CODES are found alone."""
    from service.models.batch_size_tuning import LADDER, TIE

    parser = argparse.ArgumentParser(
        prog=program_name(),
        description=(
            "A drop-in replacement for TF Serving's tensorflow_model_server: its gRPC and REST APIs, its flags, and "
            "KServe v2, with dynamic batching. "
            f"Every flag can also be set through the environment as {ENV_PREFIX}<FLAG_NAME> "
            f"(e.g. {ENV_PREFIX}MAX_BATCH_SIZE=16)."
        ),
        formatter_class=_HelpWithDefaults,
    )
    bool_flag = dict(type=_parse_bool, nargs="?", const=True, metavar="BOOL")

    ports = parser.add_argument_group("Ports")
    ports.add_argument(
        "--port", type=_non_negative_int,
        help="gRPC port: TF Serving's PredictionService and ModelService, KServe v2, health and reflection "
        "(0 picks a free port)",
    )
    ports.add_argument("--host", help="address the gRPC and HTTP ports bind to")
    ports.add_argument(
        "--rest_api_port", type=_non_negative_int,
        help="HTTP port: TF Serving's REST API, and the Prometheus metrics at '/metrics' and "
        "'/monitoring/prometheus/metrics'; it takes the gRPC port's TLS settings (0: no HTTP port, so no REST API "
        "and no metrics, as in TF Serving; the images and manifests use 8501)",
    )
    ports.add_argument("--grpc_socket_path", metavar="PATH", help="also serve gRPC on this Unix domain socket")

    models = parser.add_argument_group("Models")
    models.add_argument("--model_name", help="the name clients put in 'model_spec.name'")
    models.add_argument(
        "--model_base_path", metavar="DIR",
        help="directory of numeric version subdirectories ('1/', '2/', ...); the highest is served, and a new "
        "one is picked up while serving; required unless --model_config_file is given",
    )
    models.add_argument(
        "--model_config_file", metavar="FILE",
        help="TF Serving's ModelServerConfig text proto ('model_config_list { config { name: ... base_path: ... } }') "
        "naming several models, with version policies and labels; --model_name and --model_base_path are then "
        "ignored",
    )
    models.add_argument(
        "--model_config_file_poll_wait_seconds", type=_non_negative_float, metavar="SECONDS",
        help="re-read --model_config_file this often and, when it changed, serve what it names (0: at start-up only)",
    )
    models.add_argument(
        "--file_system_poll_wait_seconds", type=float, metavar="SECONDS",
        help="how often base paths are polled for new versions, fractions allowed (<= 0: only at start-up)",
    )
    models.add_argument(
        "--saved_model_tags", type=_tag_set, metavar="TAGS",
        help="comma-separated tags of the MetaGraph loaded from each SavedModel, e.g. 'serve,gpu'; a SavedModel "
        "without it is refused, naming the tag sets it has",
    )
    models.add_argument(
        "--enable_model_warmup",
        help="replay a version's 'assets.extra/tf_serving_warmup_requests' (TF Serving's TFRecord of "
        "PredictionLogs, at most 1000) before it takes traffic; a file that cannot be read fails the load",
        **bool_flag,
    )

    batching = parser.add_argument_group("Batching")
    batching.add_argument(
        "--enable_batching",
        help="batch concurrent requests to the same model and signature ('make serve' turns it on); off, every "
        "request runs alone, still through the bounded queue",
        **bool_flag,
    )
    batching.add_argument(
        "--batching_parameters_file", metavar="FILE",
        help="TF Serving's BatchingParameters text proto, e.g. 'max_batch_size { value: 32 }'; a batching flag, "
        "or its environment variable, overrides the field it names",
    )
    batching.add_argument(
        "--max_batch_size", type=_batch_size_or_auto, metavar="N|auto",
        help="the most items (images or rows) one model call runs. 'auto' (in the file: 'max_batch_size { value: "
        f"auto }}'; needs --enable_batching) times each image model at batch sizes {', '.join(map(str, LADDER[:3]))} "
        f"... {LADDER[-1]} while it warms up, stops once throughput has fallen twice, and keeps the best throughput "
        f"(of sizes within {TIE:.0%} of the best, the largest) within --batch_latency_budget_ms; the curve is logged and "
        "exported ('inference_batch_size_throughput', 'inference_max_batch_size'). Models other than image models keep "
        "the default",
    )
    batching.add_argument(
        "--batch_latency_budget_ms", type=_non_negative_float, metavar="MS",
        help="with --max_batch_size=auto: the longest one batch may take; larger sizes are not considered "
        "(0: no budget)",
    )
    batching.add_argument(
        "--batch_timeout_micros", type=_non_negative_int, metavar="MICROS",
        help="with --dispatch_when_idle=false: how long a batch's oldest item waits for the batch to fill before "
        "it runs anyway; with idle dispatch (the default) no batch waits for it",
    )
    batching.add_argument(
        "--max_enqueued_batches", type=_positive_int, metavar="N",
        help="the queue bound, in batches: at most --max_enqueued_batches × --max_batch_size items wait; beyond it a "
        "request is refused at once with RESOURCE_EXHAUSTED (REST: 429)",
    )
    batching.add_argument("--num_batch_threads", type=_positive_int, metavar="N", help="batches that may run at once")
    batching.add_argument(
        "--allowed_batch_sizes", type=_int_list, metavar="SIZES",
        help="comma-separated increasing sizes batches are padded up to, by repeating their first row; the last "
        "must equal --max_batch_size, and each is warmed up before the model takes traffic (none: any size)",
    )
    batching.add_argument(
        "--dispatch_when_idle",
        help="as soon as a batch thread is free, run what is queued, so a lone request never waits for a batch "
        "that is not coming; false: TF Serving's rule (a batch runs when full or after --batch_timeout_micros)",
        **bool_flag,
    )
    batching.add_argument(
        "--decode_threads", type=_non_negative_int, metavar="N",
        help="threads decoding images beside the running batch (0: one per CPU core)",
    )

    admission = parser.add_argument_group("Admission and deadlines")
    admission.add_argument(
        "--max_inflight_requests", type=_non_negative_int, metavar="N",
        help="inference requests in flight (decoding, queued or running) at once; beyond it RESOURCE_EXHAUSTED at once "
        "(REST: 429). Health checks, metadata and status are not counted, so an overloaded server still answers "
        "its probes (0: no limit)",
    )
    admission.add_argument(
        "--refuse_unmeetable_deadlines",
        help="refuse at once with RESOURCE_EXHAUSTED (REST: 429) a request whose deadline the work ahead of it "
        "cannot meet, and never start an item with less time left than its batch takes, judged from the batch "
        "times measured while serving; false: queue whatever the deadline, and drop an item whose deadline passes "
        "before its batch runs",
        **bool_flag,
    )
    admission.add_argument(
        "--deadline_headroom", type=_non_negative_float, metavar="FRACTION",
        help="fraction by which predicted finish times and batch times are stretched before they are compared "
        "with a deadline",
    )
    admission.add_argument(
        "--rest_api_timeout_in_ms", type=_non_negative_int, metavar="MS",
        help="a REST request's deadline, counted from its arrival and judged like a gRPC deadline; a body that "
        "has not arrived by then is answered 504 (0: none)",
    )

    limits = parser.add_argument_group("Request limits")
    limits.add_argument(
        "--max_images_per_request", type=_positive_int, metavar="N",
        help="images (or rows, or examples) one request may carry; more is INVALID_ARGUMENT",
    )
    limits.add_argument(
        "--max_image_pixels", type=_non_negative_int, metavar="N",
        help="largest width × height an image may declare, checked from its header before anything is decoded "
        "(JPEG and PNG headers read directly, other formats by Pillow, which reads only the header), so a "
        "decompression bomb of a few hundred bytes is refused with INVALID_ARGUMENT (0: no limit)",
    )
    limits.add_argument(
        "--grpc_max_message_bytes", type=_positive_int, metavar="BYTES",
        help="largest gRPC message received or sent (by default TF Serving's limit, 2 GiB less one byte); a larger "
        "request gets RESOURCE_EXHAUSTED from gRPC itself",
    )
    limits.add_argument(
        "--rest_api_max_body_bytes", type=_non_negative_int, metavar="BYTES",
        help="largest REST request body: a larger one is answered 413 as soon as the limit is passed, never read "
        "whole (0: the --grpc_max_message_bytes limit)",
    )
    limits.add_argument(
        "--rest_api_idle_timeout_seconds", type=_non_negative_float, metavar="SECONDS",
        help="close a REST keep-alive connection idle this long (a request body must arrive within "
        "--rest_api_timeout_in_ms)",
    )

    health = parser.add_argument_group("Model health")
    health.add_argument(
        "--batch_execution_timeout_seconds", type=_non_negative_float, metavar="SECONDS",
        help="a model call running longer fails its batch's requests with UNAVAILABLE, logs an ERROR and counts "
        "'inference_batch_timeouts_total'. The call keeps its batch thread until it returns (a thread cannot be "
        "interrupted), and the model is stuck: gRPC health, KServe ModelReady and ServerReady, and the REST model "
        "status report it not ready until a batch completes (0: no limit)",
    )
    health.add_argument(
        "--stuck_model_liveness_seconds", type=_non_negative_float, metavar="SECONDS",
        help="a model stuck this long (see --batch_execution_timeout_seconds) turns the gRPC health service "
        "'liveness' NOT_SERVING, so a liveness probe on it restarts the pod (0: never)",
    )

    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--ssl_config_file", metavar="FILE",
        help="TF Serving's SSLConfig text proto, PEM text inline: 'server_key', 'server_cert', 'custom_ca', "
        "'client_verify' (true: mutual TLS); instead of --tls_cert_file and --tls_key_file",
    )
    tls.add_argument(
        "--tls_cert_file", metavar="FILE",
        help="PEM server certificate chain: serve gRPC and REST over TLS (with --tls_key_file)",
    )
    tls.add_argument("--tls_key_file", metavar="FILE", help="PEM private key of --tls_cert_file")
    tls.add_argument(
        "--tls_client_ca_file", metavar="FILE",
        help="PEM CA bundle: both ports require client certificates signed by it (mutual TLS)",
    )

    admin = parser.add_argument_group("Administrative calls")
    admin.add_argument(
        "--enable_model_config_reload",
        help="let 'ModelService.HandleReloadConfigRequest' replace the served models, for callers presenting "
        "--admin_header or a certificate named in --admin_client_cert_names (others get PERMISSION_DENIED); "
        "needs one of the two",
        **bool_flag,
    )
    admin.add_argument(
        "--admin_header", type=_admin_header, metavar="KEY=VALUE",
        help="administrative calls must carry this gRPC metadata header (key lower-cased, value compared in "
        "constant time); set it through BATCHSERVE_ADMIN_HEADER to keep the secret off the command line",
    )
    admin.add_argument(
        "--admin_client_cert_names", type=_name_list, metavar="NAMES",
        help="comma-separated client certificate names (common name or subject alternative name) allowed to make "
        "administrative calls; needs mutual TLS",
    )

    connections = parser.add_argument_group("gRPC connections")
    connections.add_argument(
        "--grpc_max_connection_age_ms", type=_non_negative_int, metavar="MS",
        help="close each client connection (GOAWAY) after this age, so clients behind an L4 load balancer "
        "reconnect and spread over new replicas (0: never)",
    )
    connections.add_argument(
        "--grpc_max_connection_age_grace_ms", type=_non_negative_int, metavar="MS",
        help="time in-flight RPCs get on a connection closed for its age (0: unlimited)",
    )
    connections.add_argument(
        "--grpc_channel_arguments", type=_channel_arguments, metavar="KEY=VALUE,...",
        help="extra gRPC server channel arguments, e.g. 'grpc.max_concurrent_streams=100' (an integer value is "
        "passed as one)",
    )

    tensorflow = parser.add_argument_group("TensorFlow")
    tensorflow.add_argument(
        "--tensorflow_intra_op_parallelism", type=_non_negative_int, metavar="N",
        help="threads one TensorFlow op may use (0: TensorFlow's default)",
    )
    tensorflow.add_argument(
        "--tensorflow_inter_op_parallelism", type=_non_negative_int, metavar="N",
        help="TensorFlow ops run in parallel (0: TensorFlow's default)",
    )
    tensorflow.add_argument(
        "--tensorflow_session_parallelism", type=_non_negative_int, metavar="N",
        help="sets both of the above where they are not set (0: TensorFlow's default)",
    )
    tensorflow.add_argument(
        "--enable_signature_method_name_check",
        help="Classify, Regress and MultiInference also require the signature's method_name to be "
        "'tensorflow/serving/classify' or 'tensorflow/serving/regress'; false (as in TF Serving): any signature "
        "whose inputs and outputs fit is accepted, e.g. those of a model saved with 'tf.saved_model.save', "
        "which are all named 'tensorflow/serving/predict'",
        **bool_flag,
    )
    tensorflow.add_argument(
        "--enable_serialization_as_tensor_content",
        help="Predict answers numbers packed in 'tensor_content' (faster for large outputs) instead of the typed "
        "'*_val' fields TF Serving fills",
        **bool_flag,
    )

    shutdown = parser.add_argument_group("Drain at shutdown")
    shutdown.add_argument(
        "--shutdown_delay_seconds", type=_non_negative_float, metavar="SECONDS",
        help="at SIGTERM or SIGINT, report NOT_SERVING but keep accepting requests this long, so load balancers "
        "stop sending new ones; after it new requests get UNAVAILABLE",
    )
    shutdown.add_argument(
        "--shutdown_grace_seconds", type=_non_negative_float, metavar="SECONDS",
        help="drain timeout: once new requests are refused, in-flight and queued ones get this long to finish",
    )

    logs = parser.add_argument_group("Logs and metrics")
    logs.add_argument(
        "--log_level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="the least severe level logged: DEBUG, INFO, WARNING or ERROR",
    )
    logs.add_argument(
        "--log_format", choices=["json", "text"], type=str.lower,
        help="'json': one JSON object per line on stderr, with trace ids; 'text': 'time LEVEL logger: message' lines",
    )
    logs.add_argument(
        "--access_log",
        help="log one line per request, gRPC and REST (health checks excepted): method, model, status, duration, "
        "peer, trace ids",
        **bool_flag,
    )
    logs.add_argument(
        "--monitoring_config_file", metavar="FILE",
        help="TF Serving's MonitoringConfig text proto: 'prometheus_config { enable: true path: \"/my/metrics\" }' "
        "also serves the metrics at that path on --rest_api_port (they are always at '/metrics' and "
        "'/monitoring/prometheus/metrics')",
    )

    compatibility = parser.add_argument_group(
        "tensorflow_model_server compatibility",
        "Accepted so existing command lines start; an unknown flag is an error.",
    )
    compatibility.add_argument(
        "--version", action=PrintVersionAction, help="print the server's and TensorFlow's versions, then exit",
    )
    for name in TF_SERVING_FLAGS_WITHOUT_EFFECT:
        compatibility.add_argument(
            f"--{name}", nargs="?", const="true", metavar="VALUE", help="no effect here (one warning at start-up)"
        )
    for name, (default, reason) in TF_SERVING_FLAGS_REFUSED.items():
        compatibility.add_argument(
            f"--{name}", nargs="?", const="true", metavar="VALUE",
            help=f"refused unless {default or 'empty'}: {reason}",
        )
    return parser


def _environment_values(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, object]:
    """Flag values from the environment (BATCHSERVE_<FLAG>), parsed with the same types as the flags themselves."""
    values: dict[str, object] = {}
    for action in parser._actions:  # argparse exposes no public iterator over actions
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        name = ENV_PREFIX + action.dest.upper()
        if name in environ:
            raw = environ[name]
            try:
                values[action.dest] = action.type(raw) if action.type else raw
            except (argparse.ArgumentTypeError, ValueError) as error:
                parser.error(f"environment variable {name}: {error}")
    return values


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Build the settings from flags and environment; exits with a usage message on bad input."""
    parser = build_argument_parser()
    flags = vars(parser.parse_args(argv))
    given = {**_environment_values(parser, os.environ if environ is None else environ)}
    given.update({name: value for name, value in flags.items() if value is not None})

    batching = BatchingParameters()
    batching_file = given.pop("batching_parameters_file", None)
    if batching_file:
        try:
            text = Path(batching_file).read_text(encoding="utf-8")
            batching = parse_batching_parameters(text)
        except (OSError, ValueError) as error:
            parser.error(f"--batching_parameters_file: {error}")
        given["auto_batch_size"] = asks_for_auto_batch_size(text)
    if given.get("max_batch_size") == "auto":
        given.pop("max_batch_size")
        given["auto_batch_size"] = True
    elif "max_batch_size" in given:
        given["auto_batch_size"] = False
    overrides = {name: given.pop(name) for name in _BATCHING_FLAGS if name in given}
    if "allowed_batch_sizes" in given:
        overrides["allowed_batch_sizes"] = tuple(given.pop("allowed_batch_sizes"))
    if "dispatch_when_idle" in given:
        overrides["dispatch_when_idle"] = given.pop("dispatch_when_idle")
    try:
        batching = dataclasses.replace(batching, **overrides)
    except ValueError as error:
        parser.error(f"batching parameters: {error}")

    for name, (default, reason) in TF_SERVING_FLAGS_REFUSED.items():
        value = given.pop(name, None)
        if value is not None and not _is_default(value, default):
            parser.error(f"--{name}={value}: {reason}")
    given["flags_without_effect"] = tuple(
        name for name in TF_SERVING_FLAGS_WITHOUT_EFFECT if given.pop(name, None) is not None
    )

    monitoring_file = given.pop("monitoring_config_file", None)
    if monitoring_file:
        try:
            given["prometheus_path"] = parse_monitoring_config_file(Path(str(monitoring_file))) or ""
        except (OSError, ValueError) as error:
            parser.error(f"--monitoring_config_file: {error}")

    config_file = given.pop("model_config_file", None)
    if config_file:
        given["model_config_file"] = Path(str(config_file))
        try:
            given["models"] = parse_model_config_file(given["model_config_file"])
        except (OSError, ValueError) as error:
            parser.error(f"--model_config_file: {error}")
    if "model_base_path" in given:
        given["model_base_path"] = Path(str(given["model_base_path"])).expanduser().resolve()
    for name in ("ssl_config_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        if given.get(name):
            given[name] = Path(str(given[name])).expanduser()
        else:
            given.pop(name, None)
    if bool(given.get("tls_cert_file")) != bool(given.get("tls_key_file")):
        parser.error("--tls_cert_file and --tls_key_file go together")
    if given.get("tls_client_ca_file") and not given.get("tls_cert_file"):
        parser.error("--tls_client_ca_file needs --tls_cert_file and --tls_key_file")
    if given.get("auto_batch_size") and batching.allowed_batch_sizes:
        parser.error("--max_batch_size=auto measures the batch size: it does not go with --allowed_batch_sizes")
    if given.get("enable_model_config_reload") and not (given.get("admin_header") or given.get("admin_client_cert_names")):
        parser.error(
            "--enable_model_config_reload needs --admin_header (or BATCHSERVE_ADMIN_HEADER) or "
            "--admin_client_cert_names: anyone who reaches the port could otherwise change what is served"
        )
    if given.get("admin_client_cert_names") and not given.get("tls_client_ca_file") and not given.get("ssl_config_file"):
        parser.error("--admin_client_cert_names needs mutual TLS (--tls_client_ca_file or --ssl_config_file)")
    if given.get("ssl_config_file") and given.get("tls_cert_file"):
        parser.error("use either --ssl_config_file or --tls_cert_file/--tls_key_file, not both")
    return ServerSettings(batching=batching, **given)
