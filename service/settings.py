"""All server settings in one typed object, built from `tensorflow_model_server`-style flags and environment.

Precedence, lowest to highest: defaults, environment (`BATCHSERVE_<FLAG_NAME>` upper-case, plus TF Serving's
Docker variables `MODEL_NAME` / `MODEL_BASE_PATH`), the batching parameters file, explicit flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from batching import BatchingParameters, DeadlinePolicy

from .admin_access import AdminAccess, parse_admin_header
from .batching_config import asks_for_auto_batch_size, parse_batching_parameters
from .model_config import ModelSource, parse_model_config_file
from .monitoring_config import parse_monitoring_config_file

ENV_PREFIX = "BATCHSERVE_"

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
    "num_tflite_interpreters_per_pool", "num_tflite_interpreters", "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled", "enable_profiler", "skip_initialize_tpu", "mixed_precision",
    "tensorflow_session_config_file", "thread_pool_factory_config_file",
    "allow_version_labels_for_unavailable_models", "enable_grpc_healthcheck_service",
    "use_tflite_model", "gpu_id",
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
    rest_api_port: int = 8501
    model_name: str = "default"
    model_base_path: Path = Path("/models/default")
    models: tuple[ModelSource, ...] = ()  # from --model_config_file; empty: model_name/model_base_path
    model_config_file: Path | None = None
    file_system_poll_wait_seconds: float = 1.0  # <= 0: look for versions only at start-up
    enable_batching: bool = False
    batching: BatchingParameters = field(default_factory=BatchingParameters)
    decode_threads: int = 0  # 0: one per CPU core
    max_images_per_request: int = 1024
    grpc_max_message_bytes: int = 64 * 1024 * 1024
    rest_api_max_body_bytes: int = 0  # largest REST request body (413 beyond it); 0: --grpc_max_message_bytes
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
    shutdown_grace_seconds: float = 10.0
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
        """The models to serve: the config file's, or the one named by --model_name/--model_base_path."""
        return self.models or (ModelSource(self.model_name, self.model_base_path),)

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


def build_argument_parser() -> argparse.ArgumentParser:
    """Flags named as `tensorflow_model_server`'s, so existing command lines and manifests carry over."""
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=(
            "Async dynamic-batching gRPC server for image classifiers, speaking TensorFlow Serving's "
            "PredictionService / ModelService APIs. Every flag can also be set through the environment "
            f"as {ENV_PREFIX}<FLAG_NAME> (e.g. {ENV_PREFIX}MAX_BATCH_SIZE=16)."
        ),
    )
    bool_flag = dict(type=_parse_bool, nargs="?", const=True, metavar="BOOL")
    parser.add_argument("--port", type=_non_negative_int, help="gRPC port (default 8500; 0 picks a free port)")
    parser.add_argument("--host", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--rest_api_port", type=_non_negative_int,
        help="HTTP port for TF Serving's REST API and Prometheus metrics at /metrics and "
        "/monitoring/prometheus/metrics (default 8501; 0 disables)",
    )
    parser.add_argument("--model_name", help="name clients put in model_spec.name (default 'default')")
    parser.add_argument(
        "--model_base_path", help="directory holding numeric version subdirectories; the highest is served"
    )
    parser.add_argument(
        "--model_config_file",
        help="TF Serving ModelServerConfig text proto (model_config_list { config { name base_path ... } }) "
        "naming several models; replaces --model_name/--model_base_path",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds", type=float,
        help="how often base paths are polled for new versions (default 1; <= 0: only at start-up)",
    )
    parser.add_argument("--enable_batching", help="batch concurrent requests (default false)", **bool_flag)
    parser.add_argument(
        "--batching_parameters_file",
        help="TF Serving BatchingParameters text proto, e.g. 'max_batch_size { value: 32 }'",
    )
    parser.add_argument(
        "--max_batch_size", type=_batch_size_or_auto,
        help="largest batch the model runs, or auto: time the model at batch sizes 1..128 while it warms up and "
        "keep the best throughput within --batch_latency_budget_ms",
    )
    parser.add_argument(
        "--batch_latency_budget_ms", type=_non_negative_float,
        help="with --max_batch_size=auto: the longest a batch may take (default 0: no budget)",
    )
    parser.add_argument(
        "--batch_timeout_micros", type=_non_negative_int,
        help="longest an item waits for its batch to fill while the model is busy",
    )
    parser.add_argument(
        "--max_enqueued_batches", type=_positive_int,
        help="queue bound in batches; beyond it requests are refused with RESOURCE_EXHAUSTED",
    )
    parser.add_argument("--num_batch_threads", type=_positive_int, help="batches that may run at once")
    parser.add_argument(
        "--allowed_batch_sizes", type=_int_list,
        help="comma-separated sizes batches are padded up to (last must equal max_batch_size)",
    )
    parser.add_argument(
        "--dispatch_when_idle", help="run a batch at once when a batch thread is idle (default true)", **bool_flag
    )
    parser.add_argument("--decode_threads", type=_non_negative_int, help="image decoding threads (0: one per core)")
    parser.add_argument("--max_images_per_request", type=_positive_int, help="largest image batch one request may carry")
    parser.add_argument("--grpc_max_message_bytes", type=_positive_int, help="largest gRPC message accepted or sent")
    parser.add_argument(
        "--rest_api_max_body_bytes", type=_non_negative_int,
        help="largest REST request body: a larger one is answered 413 as soon as it is seen, never read whole "
        "(default 0: --grpc_max_message_bytes)",
    )
    parser.add_argument(
        "--rest_api_idle_timeout_seconds", type=_non_negative_float,
        help="close a REST keep-alive connection idle this long (default 60); a request body must arrive "
        "within --rest_api_timeout_in_ms",
    )
    parser.add_argument(
        "--grpc_max_connection_age_ms", type=_non_negative_int,
        help="close each client connection (GOAWAY) after this age so clients reconnect and spread over "
        "new replicas (default 0: never)",
    )
    parser.add_argument(
        "--grpc_max_connection_age_grace_ms", type=_non_negative_int,
        help="time in-flight RPCs get on a connection closed for its age (default 0: unlimited)",
    )
    parser.add_argument(
        "--max_image_pixels", type=_non_negative_int,
        help="refuse images whose header declares more pixels, before decoding (default 25000000; 0: no limit)",
    )
    parser.add_argument(
        "--max_inflight_requests", type=_non_negative_int,
        help="inference requests in progress at once; beyond it RESOURCE_EXHAUSTED at once (default 1024; 0: no limit)",
    )
    parser.add_argument(
        "--batch_execution_timeout_seconds", type=_non_negative_float,
        help="fail a batch whose model call runs longer, and report it (default 0: no limit)",
    )
    parser.add_argument(
        "--stuck_model_liveness_seconds", type=_non_negative_float,
        help="a model stuck this long (a batch past --batch_execution_timeout_seconds and none completed since) "
        "turns the gRPC health service 'liveness' NOT_SERVING, so Kubernetes restarts the pod (default 300; 0: never)",
    )
    parser.add_argument(
        "--refuse_unmeetable_deadlines",
        help="refuse at once (RESOURCE_EXHAUSTED) a request whose deadline the queue ahead of it cannot meet, "
        "and never start an item with less time left than its batch takes; predictions come from the batch "
        "times measured while serving (default true)",
        **bool_flag,
    )
    parser.add_argument(
        "--deadline_headroom", type=_non_negative_float,
        help="fraction by which predicted finish times are stretched before they are compared with a "
        "request's deadline, for batch-time jitter (default 0.1)",
    )
    parser.add_argument(
        "--ssl_config_file",
        help="TF Serving SSLConfig text proto: server_key, server_cert, custom_ca (PEM text), client_verify",
    )
    parser.add_argument("--tls_cert_file", help="PEM server certificate chain: serve gRPC over TLS")
    parser.add_argument("--tls_key_file", help="PEM private key of --tls_cert_file")
    parser.add_argument(
        "--tls_client_ca_file", help="PEM CA bundle: require client certificates signed by it (mutual TLS)"
    )
    parser.add_argument(
        "--tensorflow_intra_op_parallelism", type=_non_negative_int, help="threads inside one op (0: TF default)"
    )
    parser.add_argument(
        "--tensorflow_inter_op_parallelism", type=_non_negative_int, help="ops run in parallel (0: TF default)"
    )
    parser.add_argument(
        "--tensorflow_session_parallelism", type=_non_negative_int,
        help="threads for both of the above where they are not set (0: TF default)",
    )
    parser.add_argument(
        "--shutdown_grace_seconds", type=_non_negative_float,
        help="drain timeout: time in-flight and queued requests get to finish at shutdown (default 10)",
    )
    parser.add_argument(
        "--shutdown_delay_seconds", type=_non_negative_float,
        help="at shutdown, report NOT_SERVING but keep accepting requests this long before refusing new "
        "ones with UNAVAILABLE (default 0)",
    )
    parser.add_argument("--grpc_socket_path", help="also serve gRPC on this Unix domain socket")
    parser.add_argument(
        "--grpc_channel_arguments", type=_channel_arguments,
        help="gRPC server channel arguments, key=value,key=value (e.g. grpc.max_concurrent_streams=100)",
    )
    parser.add_argument(
        "--rest_api_timeout_in_ms", type=_non_negative_int,
        help="deadline of a REST request: one that cannot be answered in time is refused or ends with 504 "
        "(default 30000; 0: none)",
    )
    parser.add_argument(
        "--enable_model_config_reload",
        help="allow ModelService.HandleReloadConfigRequest to replace the served models, for callers presenting "
        "--admin_header or a certificate named in --admin_client_cert_names (default false)",
        **bool_flag,
    )
    parser.add_argument(
        "--admin_header", type=_admin_header,
        help="KEY=VALUE: administrative calls must carry this gRPC metadata header (environment: "
        "BATCHSERVE_ADMIN_HEADER, to keep the secret off the command line)",
    )
    parser.add_argument(
        "--admin_client_cert_names", type=_name_list,
        help="comma-separated client certificate names (CN or SAN) allowed to make administrative calls over "
        "mutual TLS (--tls_client_ca_file)",
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds", type=_non_negative_float,
        help="re-read --model_config_file this often and serve what it names (default 0: at start-up only)",
    )
    parser.add_argument(
        "--monitoring_config_file",
        help="TF Serving MonitoringConfig text proto: prometheus_config { enable: true path: \"/...\" } also "
        "serves the metrics at that path on --rest_api_port (they are always at /metrics and "
        "/monitoring/prometheus/metrics)",
    )
    parser.add_argument(
        "--enable_model_warmup", help="replay assets.extra/tf_serving_warmup_requests at load (default true)",
        **bool_flag,
    )
    parser.add_argument(
        "--enable_serialization_as_tensor_content",
        help="Predict answers numbers packed in tensor_content instead of the typed *_val fields (default false)",
        **bool_flag,
    )
    parser.add_argument(
        "--saved_model_tags", type=_tag_set,
        help="comma-separated tags of the MetaGraph to load from each SavedModel (default: serve)",
    )
    for name in TF_SERVING_FLAGS_WITHOUT_EFFECT:
        parser.add_argument(f"--{name}", nargs="?", const="true", help="accepted for compatibility; no effect here")
    for name, (default, _) in TF_SERVING_FLAGS_REFUSED.items():
        parser.add_argument(f"--{name}", nargs="?", const="true", help=f"not supported (default {default!r} only)")
    parser.add_argument("--log_level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.add_argument(
        "--log_format", choices=["json", "text"], type=str.lower,
        help="json: one JSON object per line with trace ids (default); text: for humans",
    )
    parser.add_argument("--access_log", help="log one line per RPC (default false)", **bool_flag)
    return parser


def _environment_values(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, object]:
    """Flag values from the environment, parsed with the same types as the flags themselves."""
    values: dict[str, object] = {}
    docker_aliases = {"model_name": "MODEL_NAME", "model_base_path": "MODEL_BASE_PATH"}
    for action in parser._actions:  # argparse exposes no public iterator over actions
        if not action.option_strings or action.dest == "help":
            continue
        names = [ENV_PREFIX + action.dest.upper()]
        if action.dest in docker_aliases:
            names.append(docker_aliases[action.dest])
        for name in names:
            if name in environ:
                raw = environ[name]
                try:
                    values[action.dest] = action.type(raw) if action.type else raw
                except (argparse.ArgumentTypeError, ValueError) as error:
                    parser.error(f"environment variable {name}: {error}")
                break
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
