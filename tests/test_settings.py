"""Settings: tensorflow_model_server flag names, environment, and TF Serving's batching parameters file."""

from __future__ import annotations

from pathlib import Path

import pytest

from batching import BatchingParameters
from service.models.batching_config import parse_batching_parameters
from service.process.settings import TF_SERVING_MAX_MESSAGE_BYTES, build_argument_parser, load_settings


def test_defaults_match_tensorflow_model_server():
    """tensorflow_model_server's defaults (model_servers/main.cc and server.h), where a user swapping binaries
    would want them kept."""
    settings = load_settings([], environ={})
    assert settings.port == 8500 and settings.rest_api_port == 0  # TF Serving opens no REST port unless asked
    assert settings.model_name == "default" and settings.model_base_path is None
    assert settings.enable_batching is False
    assert settings.effective_batching.max_batch_size == 1
    assert settings.rest_api_timeout_in_ms == 30_000 and settings.file_system_poll_wait_seconds == 1
    assert settings.grpc_max_message_bytes == TF_SERVING_MAX_MESSAGE_BYTES == 2**31 - 1
    assert settings.model_config_file_poll_wait_seconds == 0 and settings.enable_model_warmup is True
    assert settings.saved_model_tags == ("serve",) and settings.enable_signature_method_name_check is False
    assert settings.enable_serialization_as_tensor_content is False
    assert (settings.intra_op_threads, settings.inter_op_threads) == (0, 0)


def test_without_a_model_the_server_refuses_to_start_naming_the_flags():
    with pytest.raises(ValueError, match="--model_base_path"):
        load_settings([], environ={}).model_sources


def test_a_model_config_file_replaces_model_name_and_base_path_without_an_error(tmp_path: Path):
    """TF Serving ignores --model_name and --model_base_path when --model_config_file is given; so do we, which
    lets flags after the image name add a config file to the image's defaults."""
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "a" base_path: "/models/a" model_platform: "tensorflow" } }'
    )
    settings = load_settings(
        ["--model_name=half_plus_two", "--model_base_path=/models/half_plus_two", f"--model_config_file={config}"],
        environ={},
    )
    assert [(source.name, str(source.base_path)) for source in settings.model_sources] == [("a", "/models/a")]


def test_a_later_flag_wins_over_an_earlier_one(tmp_path: Path):
    """The image's entrypoint puts its defaults first and the user's flags after them."""
    settings = load_settings(
        ["--port=8500", "--rest_api_port=8501", "--model_name=model", f"--model_base_path={tmp_path / 'a'}",
         "--enable_batching=true", "--rest_api_port=8080", "--model_name=x", f"--model_base_path={tmp_path / 'b'}"],
        environ={},
    )
    assert (settings.rest_api_port, settings.model_name, settings.model_base_path) == (8080, "x", tmp_path / "b")
    assert settings.enable_batching is True


def test_tf_serving_image_variables_are_not_read_by_the_server(tmp_path: Path):
    """MODEL_NAME and MODEL_BASE_PATH belong to the image's entrypoint (MODEL_BASE_PATH is the parent
    directory there); tensorflow_model_server itself reads no environment."""
    settings = load_settings([], environ={"MODEL_NAME": "resnet", "MODEL_BASE_PATH": "/models"})
    assert settings.model_name == "default" and settings.model_base_path is None
    ours = load_settings([], environ={"BATCHSERVE_MODEL_NAME": "resnet", "BATCHSERVE_MODEL_BASE_PATH": str(tmp_path)})
    assert ours.model_name == "resnet" and ours.model_base_path == tmp_path.resolve()


def test_usage_names_the_command_it_was_started_by(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/opt/venv/bin/tensorflow_model_server"])
    assert build_argument_parser().prog == "tensorflow_model_server"
    monkeypatch.setattr("sys.argv", ["/usr/bin/batchserve", "--port=1"])
    assert build_argument_parser().prog == "batchserve"
    monkeypatch.setattr("sys.argv", ["/work/service/__main__.py"])
    assert build_argument_parser().prog == "python -m service"


def test_version_prints_the_server_and_tensorflow_versions(capsys):
    with pytest.raises(SystemExit) as exited:
        load_settings(["--version"], environ={})
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("TensorFlow ModelServer: batchserve ") and lines[1].startswith("TensorFlow Library: ")


def test_tf_serving_flag_spellings(tmp_path: Path):
    settings = load_settings(
        ["--port=9000", "--model_name=inception", f"--model_base_path={tmp_path}", "--enable_batching",
         "--max_batch_size=16", "--allowed_batch_sizes=4,8,16", "--batch_timeout_micros=2000"],
        environ={},
    )
    assert settings.port == 9000 and settings.model_name == "inception"
    assert settings.model_base_path == tmp_path.resolve()
    assert settings.enable_batching is True
    assert settings.effective_batching.max_batch_size == 16
    assert settings.effective_batching.allowed_batch_sizes == (4, 8, 16)
    assert load_settings(["--enable_batching=false"], environ={}).enable_batching is False


def test_batching_parameters_file_in_tf_serving_text_format(tmp_path: Path):
    path = tmp_path / "batching.config"
    path.write_text(
        "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 5000 }\n"
        "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n"
        "allowed_batch_sizes: 8\nallowed_batch_sizes: 16\nallowed_batch_sizes: 32\n"
        "pad_variable_length_inputs: true\n"
    )
    settings = load_settings(["--enable_batching", f"--batching_parameters_file={path}"], environ={})
    assert settings.batching == BatchingParameters(
        max_batch_size=32, batch_timeout_micros=5000, max_enqueued_batches=100, num_batch_threads=2,
        allowed_batch_sizes=(8, 16, 32),
    )
    # An explicit flag wins over the file.
    override = load_settings([f"--batching_parameters_file={path}", "--num_batch_threads=1"], environ={})
    assert override.batching.num_batch_threads == 1


def test_environment_sets_flags_and_flags_win():
    environ = {"BATCHSERVE_MAX_BATCH_SIZE": "8", "BATCHSERVE_MODEL_NAME": "resnet", "BATCHSERVE_ENABLE_BATCHING": "true"}
    settings = load_settings([], environ=environ)
    assert settings.batching.max_batch_size == 8 and settings.model_name == "resnet" and settings.enable_batching
    assert load_settings(["--model_name=other"], environ=environ).model_name == "other"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("max_batch_sise { value: 3 }", "max_batch_sise"),
        ("max_batch_size { value: 0 }", "max_batch_size"),
        ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4", "allowed_batch_sizes"),
    ],
)
def test_bad_batching_text_names_the_field(text: str, fragment: str):
    with pytest.raises(ValueError, match=fragment):
        parse_batching_parameters(text)


def test_bad_flags_exit_with_usage(capsys):
    with pytest.raises(SystemExit):
        load_settings(["--max_batch_size=0"], environ={})
    assert "max_batch_size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_settings(["--max_batch_size=8", "--allowed_batch_sizes=2,4"], environ={})
    assert "allowed_batch_sizes" in capsys.readouterr().err


def test_logging_flags_default_to_json_without_access_log_and_read_the_environment():
    defaults = load_settings([], environ={})
    assert (defaults.log_format, defaults.access_log, defaults.log_level) == ("json", False, "INFO")
    settings = load_settings(["--log_format=text", "--access_log"], environ={"BATCHSERVE_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.access_log, settings.log_level) == ("text", True, "DEBUG")
    assert load_settings([], environ={"BATCHSERVE_ACCESS_LOG": "true"}).access_log is True


def test_hardening_flags_and_environment():
    settings = load_settings(
        ["--max_image_pixels=1000", "--max_inflight_requests=7", "--batch_execution_timeout_seconds=2.5",
         "--shutdown_delay_seconds=1", "--tls_cert_file=/c.pem", "--tls_key_file=/k.pem"],
        environ={"BATCHSERVE_TLS_CLIENT_CA_FILE": "/ca.pem"},
    )
    assert (settings.max_image_pixels, settings.max_inflight_requests) == (1000, 7)
    assert settings.batch_execution_timeout_seconds == 2.5 and settings.shutdown_delay_seconds == 1.0
    assert settings.tls_client_ca_file == Path("/ca.pem") and settings.ssl_config_file is None
    defaults = load_settings([], environ={})
    assert defaults.tls_cert_file is None and defaults.max_image_pixels == 25_000_000


def test_a_tf_serving_command_line_with_its_everyday_flags_is_accepted(tmp_path: Path):
    settings = load_settings(
        [f"--model_base_path={tmp_path}", "--rest_api_num_threads=16", "--rest_api_timeout_in_ms=5000",
         "--grpc_channel_arguments=grpc.max_concurrent_streams=100,grpc.primary_user_agent=ours",
         "--grpc_socket_path=/tmp/tfs.sock", "--enable_model_warmup=false", "--tensorflow_session_parallelism=2",
         "--tensorflow_intra_op_parallelism=4", "--per_process_gpu_memory_fraction=0.5",
         "--flush_filesystem_caches=true", "--model_config_file_poll_wait_seconds=0", "--saved_model_tags=serve",
         "--xla_cpu_compilation_enabled", "--xla_gpu_compilation_enabled=false"],
        environ={},
    )
    assert settings.rest_api_timeout_in_ms == 5000 and settings.grpc_socket_path == "/tmp/tfs.sock"
    assert settings.grpc_channel_arguments == (("grpc.max_concurrent_streams", 100), ("grpc.primary_user_agent", "ours"))
    assert settings.enable_model_warmup is False
    assert (settings.intra_op_threads, settings.inter_op_threads) == (4, 2)  # the explicit flag wins
    assert settings.flags_without_effect == (
        "rest_api_num_threads", "per_process_gpu_memory_fraction", "flush_filesystem_caches",
        "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled",
    )


def test_model_config_reload_needs_a_way_to_tell_admins_apart(capsys):
    with pytest.raises(SystemExit):
        load_settings(["--enable_model_config_reload"], environ={})
    assert "--admin_header" in capsys.readouterr().err
    settings = load_settings(["--enable_model_config_reload"], environ={"BATCHSERVE_ADMIN_HEADER": "Admin-Key=s3cret"})
    assert settings.admin_access.header == ("admin-key", "s3cret")
    with pytest.raises(SystemExit):  # certificate names need mutual TLS to mean anything
        load_settings(["--enable_model_config_reload", "--admin_client_cert_names=ops"], environ={})
    assert "mutual TLS" in capsys.readouterr().err


def test_saved_model_tags_name_the_metagraph_to_load():
    assert load_settings([], environ={}).saved_model_tags == ("serve",)
    assert load_settings(["--saved_model_tags=serve, gpu"], environ={}).saved_model_tags == ("serve", "gpu")


@pytest.mark.parametrize(
    "flag, fragment",
    [
        ("--use_alts_credentials=true", "ALTS"),
        ("--grpc_channel_arguments=grpc.max_concurrent_streams", "key=value"),
        ("--not_a_tf_serving_flag=1", "unrecognized arguments"),
    ],
)
def test_flags_that_would_mislead_if_ignored_stop_start_up_with_a_reason(capsys, flag: str, fragment: str):
    with pytest.raises(SystemExit) as exited:
        load_settings([flag], environ={})
    assert exited.value.code != 0
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, path",
    [
        ('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }', "/monitoring/prometheus/metrics"),
        ('prometheus_config { enable: true path: "/custom/metrics" }', "/custom/metrics"),
        ("prometheus_config { enable: true }", "/monitoring/prometheus/metrics"),
        ("prometheus_config { enable: false }", ""),
    ],
)
def test_monitoring_config_file_in_tf_serving_text_format(tmp_path: Path, text: str, path: str):
    config = tmp_path / "monitoring.config"
    config.write_text(text)
    assert load_settings([f"--monitoring_config_file={config}"], environ={}).prometheus_path == path


def test_a_monitoring_config_that_does_not_parse_stops_start_up(tmp_path: Path, capsys):
    config = tmp_path / "monitoring.config"
    config.write_text("prometheus_config { enabled: true }")
    with pytest.raises(SystemExit):
        load_settings([f"--monitoring_config_file={config}"], environ={})
    error = capsys.readouterr().err
    assert "Error parsing text-format tensorflow.serving.MonitoringConfig" in error and "enabled" in error
