"""Settings: tensorflow_model_server flag names, environment, and TF Serving's batching parameters file."""

from __future__ import annotations

from pathlib import Path

import pytest

from batching import BatchingParameters
from service.batching_config import parse_batching_parameters
from service.settings import load_settings


def test_defaults_match_tensorflow_model_server():
    settings = load_settings([], environ={})
    assert settings.port == 8500 and settings.rest_api_port == 8501
    assert settings.enable_batching is False
    assert settings.effective_batching.max_batch_size == 1


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
    environ = {"BATCHSERVE_MAX_BATCH_SIZE": "8", "MODEL_NAME": "resnet", "BATCHSERVE_ENABLE_BATCHING": "true"}
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
