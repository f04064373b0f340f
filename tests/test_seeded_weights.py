"""A model version exported with seeded random weights (its labels mean nothing) never serves unnoticed: one
WARNING line when it loads, naming it and how to get real weights; `inference_model_random_weights` at 1; its
export metadata in GetModelMetadata (gRPC and REST). A version with real weights does none of that.

One real server (`python -m service`) serves four models from a config file:

- `tiny_seeded`: `python -m model_export --model tiny`, the benchmark network, always seeded;
- `fallback`: a small network with the metadata an Inception export writes when the ImageNet download
  failed (`"weights": "random"` and `weights_fallback_reason`); version 2, with real weights, is
  published while the server runs;
- `real`: the same network with `"weights": "file"`;
- `plain`: `real` without assets/export_metadata.json, as any SavedModel not made by model_export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf import json_format, struct_pb2
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from conftest import TINY_LABELS, build_tiny_classifier
from rest_client import rest_call
from server_process import REPO_ROOT, ServerProcess

FALLBACK_REASON = "cannot resolve storage.googleapis.com (no network or DNS?): Name or service not known"
SEEDED_FALLBACK_METADATA = {"model": "inception_v3", "weights": "random", "seed": 0,
                            "weights_fallback_reason": FALLBACK_REASON}
REAL_METADATA = {"weights": "file", "weights_file": "/weights/classifier.h5", "weights_sha256": "0" * 64}
SEEDED_WARNING = "has seeded random weights"


def export(base: Path, version: int, metadata: dict[str, Any]) -> Path:
    from model_export import export_classifier

    return export_classifier(build_tiny_classifier(), TINY_LABELS, base, version=version, top_k=3,
                             preprocessing="unit", metadata=metadata)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Base path of each model; `fallback_v2` is a version 2 with real weights, not yet published."""
    root = tmp_path_factory.mktemp("weights")
    subprocess.run([sys.executable, "-m", "model_export", "--model", "tiny", "--output", str(root / "tiny_seeded")],
                   cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    export(root / "fallback", 1, SEEDED_FALLBACK_METADATA)
    export(root / "staged", 2, REAL_METADATA)
    export(root / "real", 1, REAL_METADATA)
    shutil.copytree(root / "real", root / "plain")
    (root / "plain" / "1" / "assets" / "export_metadata.json").unlink()
    return {name: root / name for name in ("tiny_seeded", "fallback", "real", "plain")} | {
        "fallback_v2": root / "staged" / "2"}


@pytest.fixture(scope="module")
def server(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{name}" base_path: "{models[name]}" model_platform: "tensorflow" }}\n'
        for name in ("tiny_seeded", "fallback", "real", "plain")) + "}\n")
    with ServerProcess(models["real"], f"--model_config_file={config}", "--file_system_poll_wait_seconds=0.2",
                       model_name="ignored") as process:
        yield process


def log_records(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(server.log_lines) if line.startswith("{")]


def seeded_warnings(server: ServerProcess) -> list[dict[str, Any]]:
    return [r for r in log_records(server) if SEEDED_WARNING in r["message"]]


def random_weights_gauge(server: ServerProcess) -> dict[str, float]:
    families = {family.name: family for family in text_string_to_metric_families(server.metrics_text())}
    return {sample.labels["model"]: sample.value for sample in families["inference_model_random_weights"].samples}


def grpc_export_metadata(server: ServerProcess, model: str) -> dict[str, Any] | None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    with server.channel() as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, 10.0)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)  # TF Serving's part is unchanged
    assert "classify_pixels" in signatures.signature_def
    if "export_metadata" not in response.metadata:
        return None
    exported = struct_pb2.Struct()
    assert response.metadata["export_metadata"].Unpack(exported)
    return json_format.MessageToDict(exported)


def test_a_seeded_version_is_announced_once_in_one_warning_line_with_the_remedy(server: ServerProcess) -> None:
    warnings = seeded_warnings(server)
    by_model = {record["model"]: record for record in warnings}
    assert sorted(by_model) == ["fallback", "tiny_seeded"] and len(warnings) == 2, warnings
    for name, record in by_model.items():
        assert record["level"] == "WARNING" and record["version"] == 1 and record["weights"] == "random"
        assert f"model {name} version 1 has seeded random weights" in record["message"]
        assert "meaningless" in record["message"]
        assert "\n" not in record["message"]
    # An export that fell back says why, and how to get the real weights (docs/models.md's advice).
    fallback = by_model["fallback"]["message"]
    assert FALLBACK_REASON in fallback
    assert "python -m model_export --weights imagenet" in fallback and "--weights PATH" in fallback
    assert ".h5" in fallback
    # The benchmark network has no ImageNet weights to get: the advice is to export trained weights.
    assert "trained weights" in by_model["tiny_seeded"]["message"]


def test_the_random_weights_gauge_is_1_for_seeded_versions_and_0_for_others(server: ServerProcess) -> None:
    assert random_weights_gauge(server) == {"tiny_seeded": 1, "fallback": 1, "real": 0, "plain": 0}


def test_get_model_metadata_carries_the_export_metadata_on_grpc(server: ServerProcess) -> None:
    seeded = grpc_export_metadata(server, "fallback")
    assert seeded is not None
    assert seeded["weights"] == "random" and seeded["weights_fallback_reason"] == FALLBACK_REASON
    assert seeded["model"] == "inception_v3" and seeded["input_height"] == 32
    assert grpc_export_metadata(server, "tiny_seeded")["weights"] == "random"  # type: ignore[index]
    real = grpc_export_metadata(server, "real")
    assert real is not None and real["weights"] == "file" and real["weights_sha256"] == "0" * 64
    assert grpc_export_metadata(server, "plain") is None  # nothing exported, nothing added


def test_rest_metadata_carries_the_export_metadata(server: ServerProcess) -> None:
    status, body = rest_call(server.metrics_port, "GET", "/v1/models/fallback/metadata")
    assert status == 200, body
    assert "signature_def" in body["metadata"]["signature_def"]
    exported = body["metadata"]["export_metadata"]
    assert exported["weights"] == "random" and exported["weights_fallback_reason"] == FALLBACK_REASON
    assert exported["input_height"] == 32  # the file's own JSON: integers stay integers
    status, body = rest_call(server.metrics_port, "GET", "/v1/models/real/metadata")
    assert status == 200 and body["metadata"]["export_metadata"]["weights"] == "file"
    status, body = rest_call(server.metrics_port, "GET", "/v1/models/plain/metadata")
    assert status == 200 and "export_metadata" not in body["metadata"]


def test_a_version_with_real_weights_replacing_a_seeded_one_clears_the_gauge(
    server: ServerProcess, models: dict[str, Path]
) -> None:
    staging = models["fallback"] / ".staging-2"
    shutil.copytree(models["fallback_v2"], staging)
    staging.rename(models["fallback"] / "2")
    deadline = time.monotonic() + 60
    while random_weights_gauge(server)["fallback"] != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert random_weights_gauge(server)["fallback"] == 0
    assert grpc_export_metadata(server, "fallback")["weights"] == "file"  # type: ignore[index]
    warned = sorted((r["model"], r["version"]) for r in seeded_warnings(server))
    assert warned == [("fallback", 1), ("tiny_seeded", 1)]  # version 2 loaded without one
