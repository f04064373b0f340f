"""Model lifecycle on the real server: several models from --model_config_file, version polling and hot reload
under load, a corrupt version refused, warm-up (allowed sizes and assets.extra/tf_serving_warmup_requests).

One server serves two models from a config file: `live` (latest version, its directory polled every 0.2 s)
and `multi` (policy `all`: versions 1 and 2 side by side).
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from conftest import TINY_LABELS, build_tiny_classifier
from imaging import jpeg, png
from rest_client import b64, rest_call
from server_process import ServerProcess
from service.models.model_config import VersionPolicy, parse_model_config
from tf_serving_client import classify_request, predict_outputs, predict_request

_State = get_model_status_pb2.ModelVersionStatus.State
IMAGE = jpeg(41)


@pytest.fixture(scope="module")
def tiny_v2(tmp_path_factory) -> Path:
    """Version 2 of the tiny model: same architecture, other weights, so its scores differ from version 1."""
    from model_export import export_classifier

    base = tmp_path_factory.mktemp("tiny_v2") / "tiny"
    export_classifier(build_tiny_classifier(seed=8), TINY_LABELS, base, version=2, top_k=5, preprocessing="unit")
    return base / "2"


def publish(source: Path, base: Path, version: int, *, corrupt: bool = False) -> None:
    """Drop a version into `base` the way a trainer should: staged under a hidden name, then renamed."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    if corrupt:
        data = next((staging / "variables").glob("variables.data-*"))
        data.write_bytes(data.read_bytes()[:100])  # a half-copied checkpoint
    staging.rename(base / str(version))


def write_warmup_requests(version_dir: Path) -> None:
    """TF Serving's warm-up file: a TFRecord of PredictionLogs (here one Predict and one Classify)."""
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir()
    logs = [
        prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=predict_request("live", [jpeg(1), png(2)]))
        ),
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify_request("live", [jpeg(3)]))
        ),
    ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


class Served:
    def __init__(self, server: ServerProcess, live_base: Path, first_latency: float, later_latencies: list[float]):
        self.server, self.live_base = server, live_base
        self.first_latency, self.later_latencies = first_latency, later_latencies

    def predict(self, model: str, version: int | str | None = None):
        request = predict_request(model, [IMAGE])
        if isinstance(version, str):
            request.model_spec.version_label = version
        elif version is not None:
            request.model_spec.version.value = version
        with self.server.channel() as channel:
            return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, 10.0)

    def status(self, model: str) -> list[tuple[int, str, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        with self.server.channel() as channel:
            response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, 10.0)
        return [(s.version, _State.Name(s.state), s.status.error_message) for s in response.model_version_status]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_base, tiny_v2):
    root = tmp_path_factory.mktemp("lifecycle")
    live, multi = root / "live", root / "multi"
    shutil.copytree(tiny_model_base / "1", live / "1")
    write_warmup_requests(live / "1")
    shutil.copytree(tiny_model_base / "1", multi / "1")
    shutil.copytree(tiny_v2, multi / "2")
    config = root / "models.config"
    config.write_text(
        f"""model_config_list {{
          config {{ name: "live" base_path: "{live}" model_platform: "tensorflow" }}
          config {{ name: "multi" base_path: "{multi}" model_platform: "tensorflow"
                    model_version_policy {{ all {{}} }}
                    version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: 2 }} }}
        }}"""
    )
    with ServerProcess(
        live, f"--model_config_file={config}", "--file_system_poll_wait_seconds=0.2",
        "--enable_batching=true", "--max_batch_size=8", model_name="ignored",
    ) as server:
        # The first request after SERVING, then later ones, on a connected channel (no connect time counted).
        with server.channel() as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            latencies = []
            for _ in range(21):
                started = time.perf_counter()
                stub.Predict(predict_request("live", [IMAGE]), 10.0)
                latencies.append(time.perf_counter() - started)
        yield Served(server, live, latencies[0], latencies[1:])


def test_warm_up_before_serving_and_first_request_is_warm(served, record_property):
    log = served.server.log
    assert "warmed up" in log and "batch sizes [1, 8], 2 request(s) from assets.extra/tf_serving_warmup_requests" in log
    assert log.index("warmed up") < log.index("ready:")
    median = statistics.median(served.later_latencies)
    record_property("first_request_ms", round(served.first_latency * 1000, 2))
    record_property("later_median_ms", round(median * 1000, 2))
    print(f"\nfirst request after SERVING: {served.first_latency * 1000:.1f} ms; "
          f"median of the next {len(served.later_latencies)}: {median * 1000:.1f} ms")
    assert len(served.later_latencies) == 20


def test_two_models_from_config_file_side_by_side(served):
    assert [(v, s) for v, s, _ in served.status("multi")] == [(1, "AVAILABLE"), (2, "AVAILABLE")]
    v1, v2, latest = served.predict("multi", 1), served.predict("multi", 2), served.predict("multi")
    assert (v1.model_spec.version.value, v2.model_spec.version.value, latest.model_spec.version.value) == (1, 2, 2)
    assert not np.allclose(predict_outputs(v1)[1], predict_outputs(v2)[1], atol=1e-4)  # other weights
    np.testing.assert_allclose(predict_outputs(latest)[1], predict_outputs(v2)[1], atol=1e-6)
    status, body = rest_call(
        served.server.metrics_port, "POST", "/v1/models/multi/versions/1:predict",
        {"signature_name": "predict_images", "instances": [b64(IMAGE)]},
    )
    assert status == 200
    np.testing.assert_allclose(body["predictions"][0]["scores"], predict_outputs(v1)[1][0], atol=1e-6)
    served.predict("live")
    for model in ("live", "multi"):  # each model has its own batcher and its own series
        assert served.server.metric_value("inference_batch_size_count", f'model="{model}"') > 0


def test_new_version_under_load_is_picked_up_with_zero_failures(served, tiny_v2):
    stop = threading.Event()
    deadline = time.monotonic() + 120  # the load stops by itself even if the test fails midway
    grpc_answers: list[tuple[int, np.ndarray]] = []
    rest_answers: list[list[float]] = []
    failures: list[str] = []
    states_seen: set[tuple[int, str]] = set()

    def grpc_load():
        with served.server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    response = stub.Predict(predict_request("live", [IMAGE]), 10.0)
                    grpc_answers.append((response.model_spec.version.value, predict_outputs(response)[1][0]))
                except grpc.RpcError as error:
                    failures.append(f"grpc {error.code()}: {error.details()}")

    def rest_load():
        while not stop.is_set() and time.monotonic() < deadline:
            status, body = rest_call(
                served.server.metrics_port, "POST", "/v1/models/live:predict",
                {"signature_name": "predict_images", "instances": [b64(IMAGE)]},
            )
            if status == 200:
                rest_answers.append(body["predictions"][0]["scores"])
            else:
                failures.append(f"rest {status}: {body}")

    def watch_status():
        while not stop.is_set() and time.monotonic() < deadline:
            states_seen.update((v, s) for v, s, _ in served.status("live"))
            time.sleep(0.02)

    threads = [threading.Thread(target=t) for t in (grpc_load, grpc_load, rest_load, watch_status)]
    for thread in threads:
        thread.start()
    try:
        while not (grpc_answers and rest_answers) and time.monotonic() < deadline:  # the load is on
            time.sleep(0.05)
        assert grpc_answers and grpc_answers[-1][0] == 1
        publish(tiny_v2, served.live_base, 2)
        while not any(version == 2 for version, _ in grpc_answers) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Keep the load on while version 1 drains and unloads.
        while (1, "END") not in states_seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    print(f"\nreload under load: {len(grpc_answers)} gRPC + {len(rest_answers)} REST requests, "
          f"{len(failures)} failed; states seen {sorted(states_seen)}")
    assert failures == []
    versions = [version for version, _ in grpc_answers]
    assert versions[0] == 1 and versions[-1] == 2
    v1_scores = next(s for v, s in grpc_answers if v == 1)
    v2_scores = next(s for v, s in grpc_answers if v == 2)
    assert not np.allclose(v1_scores, v2_scores, atol=1e-4)  # really the new model's answers
    assert len(rest_answers) > 0
    assert {(1, "AVAILABLE"), (2, "LOADING"), (2, "AVAILABLE")} <= states_seen
    final = [(v, s) for v, s, _ in served.status("live")]
    assert final == [(1, "END"), (2, "AVAILABLE")]


def test_corrupt_new_version_is_refused_and_the_old_keeps_serving(served, tiny_v2):
    serving_before = served.predict("live").model_spec.version.value
    publish(tiny_v2, served.live_base, 100, corrupt=True)
    deadline = time.monotonic() + 60
    while not any(v == 100 and s == "END" for v, s, _ in served.status("live")) and time.monotonic() < deadline:
        time.sleep(0.1)
    [(_, state, error)] = [entry for entry in served.status("live") if entry[0] == 100]
    assert state == "END" and "cannot load SavedModel" in error
    assert any(v == serving_before and s == "AVAILABLE" for v, s, _ in served.status("live"))
    assert served.predict("live").model_spec.version.value == serving_before
    assert "refused model live version 100" in served.server.log


# --- the config file itself (no server) ---


def test_config_file_policies_and_relative_paths(tmp_path):
    sources = parse_model_config(
        """model_config_list {
             config { name: "a" base_path: "models/a" model_platform: "tensorflow" }
             config { name: "b" base_path: "/srv/b" model_version_policy { specific { versions: 3 versions: 1 } } }
             config { name: "c" base_path: "/srv/c" model_version_policy { latest { num_versions: 2 } } }
           }""",
        relative_to=tmp_path,
    )
    assert [s.name for s in sources] == ["a", "b", "c"]
    assert sources[0].base_path == tmp_path / "models" / "a"
    assert sources[0].policy.aspired([1, 2, 5]) == {5}
    assert sources[1].policy == VersionPolicy("specific", versions=(1, 3)) and sources[1].policy.aspired([1, 2]) == {1}
    assert sources[2].policy.aspired([1, 2, 5]) == {2, 5}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('model_config_list { config { name: "a" base_pth: "/x" } }', "base_pth"),
        ('model_config_list { config { name: "a" } }', "base_path is required"),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "onnx" } }', "onnx"),
        ('model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }', "twice"),
        ("model_config_list { }", "names no model"),
    ],
    ids=["typo", "no-base-path", "platform", "duplicate", "empty"],
)
def test_config_file_errors_name_the_problem(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_model_config(text)


def test_version_labels_from_the_config_name_versions_on_grpc_and_rest(served):
    stable, canary = served.predict("multi", "stable"), served.predict("multi", "canary")
    assert (stable.model_spec.version.value, canary.model_spec.version.value) == (1, 2)
    np.testing.assert_allclose(predict_outputs(stable)[1], predict_outputs(served.predict("multi", 1))[1], atol=1e-6)
    with pytest.raises(grpc.RpcError) as caught:
        served.predict("multi", "nightly")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "Unrecognized servable version label: nightly"  # TF Serving's words
    status, body = rest_call(
        served.server.metrics_port, "POST", "/v1/models/multi/labels/canary:predict",
        {"signature_name": "predict_images", "instances": [b64(IMAGE)]},
    )
    assert status == 200
    np.testing.assert_allclose(body["predictions"][0]["scores"], predict_outputs(canary)[1][0], atol=1e-6)
    status, body = rest_call(served.server.metrics_port, "GET", "/v1/models/multi/labels/stable")
    assert status == 200 and [v["version"] for v in body["model_version_status"]] == ["1"]


def test_a_config_file_that_does_not_parse_stops_start_up_in_tf_servings_words(tmp_path, capsys):
    from service.process.settings import load_settings

    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "a" base_pth: "/x" } }')
    with pytest.raises(SystemExit) as exited:
        load_settings([f"--model_config_file={config}"], environ={})
    assert exited.value.code != 0
    error = capsys.readouterr().err
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in error and "base_pth" in error


def test_version_directories_are_numbers_zero_padded_or_not_and_nothing_else(tmp_path, tiny_model_base):
    from service.models.version_dirs import find_versions

    for name in ("00000123", "7", "007", "1.5", "latest", "²", ".staging-9"):
        shutil.copytree(tiny_model_base / "1", tmp_path / name)
    (tmp_path / "8").mkdir()  # no saved_model.pb (yet): not a version
    (tmp_path / "9").write_text("a file, not a directory")
    found = find_versions(tmp_path)
    assert {version: path.name for version, path in found.items()} == {123: "00000123", 7: "7"}


def test_a_zero_padded_version_directory_is_served_as_its_number(tmp_path, tiny_model_base):
    base = tmp_path / "padded"
    shutil.copytree(tiny_model_base / "1", base / "00000123")
    with ServerProcess(base, model_name="padded") as server, server.channel() as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "padded"
        [status] = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, 10.0).model_version_status
        assert (status.version, status.state) == (123, _State.AVAILABLE)
        request = predict_request("padded", [IMAGE])
        request.model_spec.version.value = 123
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, 10.0)
        assert response.model_spec.version.value == 123


def _config_text(**base_paths: Path) -> str:
    configs = "".join(
        f'config {{ name: "{name}" base_path: "{path}" model_platform: "tensorflow" }} ' for name, path in base_paths.items()
    )
    return f"model_config_list {{ {configs}}}"


ADMIN_KEY, ADMIN_SECRET = "admin-key", "s3cret-for-tests"


def _reload(channel: grpc.Channel, text: str, *, secret: str | None = ADMIN_SECRET):
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(text, request.config)
    metadata = ((ADMIN_KEY, secret),) if secret is not None else ()
    return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(request, 60.0, metadata=metadata)


def _two_models_serving_a(tmp_path: Path, tiny_model_base: Path) -> tuple[Path, Path, Path]:
    """Base paths of models a and b, and a config file that names only a."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_model_base / "1", a / "1")
    shutil.copytree(tiny_model_base / "1", b / "1")
    config = tmp_path / "models.config"
    config.write_text(_config_text(a=a))
    return a, b, config


def test_reload_config_is_refused_unless_the_operator_enabled_it(served):
    with served.server.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        _reload(channel, _config_text(live=served.live_base))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--enable_model_config_reload" in caught.value.details()


def test_reload_config_adds_and_removes_models_without_failing_a_request_to_one_that_stays(tmp_path, tiny_model_base):
    a, b, config = _two_models_serving_a(tmp_path, tiny_model_base)
    with ServerProcess(a, f"--model_config_file={config}", "--enable_model_config_reload",
                       "--enable_batching=true", model_name="ignored",
                       env={"BATCHSERVE_ADMIN_HEADER": f"{ADMIN_KEY}={ADMIN_SECRET}"}) as server, server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for secret in (None, "wrong"):  # without the admin header, or with a wrong secret: refused
            with pytest.raises(grpc.RpcError) as refused:
                _reload(channel, _config_text(a=a, b=b), secret=secret)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "present the 'admin-key' header" in refused.value.details()
        with pytest.raises(grpc.RpcError):
            stub.Predict(predict_request("b", [IMAGE]), 10.0)  # nothing changed
        outcomes: list[str] = []
        stop = threading.Event()

        def keep_asking_a() -> None:
            while not stop.is_set():
                try:
                    stub.Predict(predict_request("a", [IMAGE]), 10.0)
                    outcomes.append("OK")
                except grpc.RpcError as error:
                    outcomes.append(error.code().name)

        asker = threading.Thread(target=keep_asking_a)
        asker.start()
        try:
            assert _reload(channel, _config_text(a=a, b=b)).status.error_code == 0  # OK
            assert stub.Predict(predict_request("b", [IMAGE]), 10.0).model_spec.name == "b"
            with pytest.raises(grpc.RpcError) as caught:  # a model that cannot load: nothing changes
                _reload(channel, _config_text(a=a, b=b, c=tmp_path / "missing"))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unchanged" in caught.value.details()
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(predict_request("c", [IMAGE]), 10.0)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            stop.set()
            asker.join(30)
        assert len(outcomes) > 10 and set(outcomes) == {"OK"}, {o: outcomes.count(o) for o in set(outcomes)}
        assert _reload(channel, _config_text(b=b)).status.error_code == 0
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(predict_request("a", [IMAGE]), 10.0)
        assert caught.value.details() == "Servable not found for request: Latest(a)"
        assert stub.Predict(predict_request("b", [IMAGE]), 10.0).model_spec.name == "b"


def test_the_model_config_file_is_reread_when_asked_to(tmp_path, tiny_model_base):
    a, b, config = _two_models_serving_a(tmp_path, tiny_model_base)
    with ServerProcess(a, f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=0.2",
                       model_name="ignored") as server, server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        config.write_text("not a config")  # logged, and the served set kept
        deadline = time.monotonic() + 30
        while not any("not applied" in line for line in server.log_lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stub.Predict(predict_request("a", [IMAGE]), 10.0).model_spec.name == "a"
        assert any("not applied" in line for line in server.log_lines)
        config.write_text(_config_text(b=b))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                stub.Predict(predict_request("b", [IMAGE]), 10.0)
                break
            except grpc.RpcError:
                time.sleep(0.2)
        assert stub.Predict(predict_request("b", [IMAGE]), 10.0).model_spec.name == "b"
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(predict_request("a", [IMAGE]), 10.0)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
