"""The TF Serving gRPC API of the real server, on a tiny model: answers, metadata, status, health, errors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from conftest import TINY_LABELS
from imaging import jpeg, mixed_corpus, png
from tf_serving_client import classify_request, image_example, predict_outputs, predict_request

MODEL = "tiny"


@pytest.fixture(scope="module")
def stub(tiny_server):
    with tiny_server.channel() as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def in_process_scores(base_path, images):
    loaded = tf.saved_model.load(str(base_path / "1"))
    out = loaded.signatures["predict_images"](images=tf.constant(images))
    return out["classes"].numpy(), out["scores"].numpy()


def assert_status(call, code: grpc.StatusCode, *fragments: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    for fragment in fragments:
        assert fragment in caught.value.details()


def test_predict_returns_topk_classes_and_descending_scores(stub, tiny_model_base):
    images = mixed_corpus(3)
    response = stub.Predict(predict_request(MODEL, images), 10.0)
    classes, scores = predict_outputs(response)
    assert response.outputs["classes"].dtype == types_pb2.DT_STRING
    assert response.outputs["scores"].dtype == types_pb2.DT_FLOAT
    assert classes.shape == (3, 5) and scores.shape == (3, 5)
    assert all(label.decode() in TINY_LABELS for label in classes.flat)
    assert np.all(np.diff(scores, axis=1) <= 0)
    want_classes, want_scores = in_process_scores(tiny_model_base, images)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert (classes == want_classes).all()
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "predict_images"


def test_classify_returns_labelled_classes(stub, tiny_model_base):
    images = [jpeg(1), png(2)]
    response = stub.Classify(classify_request(MODEL, images), 10.0)
    _, want_scores = in_process_scores(tiny_model_base, images)
    assert len(response.result.classifications) == 2
    for classification, expected in zip(response.result.classifications, want_scores):
        assert [c.label in TINY_LABELS for c in classification.classes] == [True] * 5
        np.testing.assert_allclose([c.score for c in classification.classes], expected, atol=1e-5)


def test_predict_on_serving_default_takes_serialized_examples(stub):
    images = [jpeg(3)]
    by_examples = stub.Predict(
        predict_request(
            MODEL, [image_example(i).SerializeToString() for i in images], signature="", input_key="inputs"
        ),
        10.0,
    )
    by_images = stub.Predict(predict_request(MODEL, images), 10.0)
    np.testing.assert_allclose(predict_outputs(by_examples)[1], predict_outputs(by_images)[1], atol=1e-6)
    assert by_examples.model_spec.signature_name == "serving_default"


def test_output_filter_limits_outputs(stub):
    request = predict_request(MODEL, [jpeg(4)])
    request.output_filter.append("scores")
    assert list(stub.Predict(request, 10.0).outputs) == ["scores"]


def test_metadata_lists_signatures(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = stub.GetModelMetadata(request, 10.0)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"predict_images", "serving_default", "preprocess", "classify_pixels"} <= set(signatures.signature_def)
    assert set(signatures.signature_def["predict_images"].inputs) == {"images"}
    assert set(signatures.signature_def["predict_images"].outputs) == {"classes", "scores"}
    assert response.model_spec.version.value == 1


def test_model_status_is_available(tiny_server):
    with tiny_server.channel() as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, 10.0)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_unknown_models_and_versions_get_tf_servings_exact_words(tiny_server, stub):
    """Clients and readiness probes compare these details verbatim (e.g. '... Latest(dummy_model)')."""
    def details(call) -> str:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        return caught.value.details()

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    metadata.model_spec.name = "dummy_model"
    assert details(lambda: stub.Predict(_predict_with(model="dummy_model"), 10.0)) == (
        "Servable not found for request: Latest(dummy_model)"
    )
    assert details(lambda: stub.GetModelMetadata(metadata, 10.0)) == "Servable not found for request: Latest(dummy_model)"
    assert details(lambda: stub.Predict(_predict_with(version=7), 10.0)) == (
        f"Servable not found for request: Specific({MODEL}, 7)"
    )
    with tiny_server.channel() as channel:
        model_service = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "dummy_model"
        assert details(lambda: model_service.GetModelStatus(request, 10.0)) == "Could not find any versions of model dummy_model"
        request.model_spec.name = MODEL
        request.model_spec.version.value = 7
        assert details(lambda: model_service.GetModelStatus(request, 10.0)) == f"Could not find version 7 of model {MODEL}"


def test_health_is_serving_and_reflection_lists_services(tiny_server):
    with tiny_server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "tensorflow.serving.PredictionService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"tensorflow.serving.PredictionService", "tensorflow.serving.ModelService", "grpc.health.v1.Health"} <= names


# --- errors: each bad request gets a status a client can act on, and the server keeps serving ---


def _predict_with(**changes):
    request = predict_request(MODEL, [jpeg(5)])
    for key, value in changes.items():
        if key == "model":
            request.model_spec.name = value
        elif key == "signature":
            request.model_spec.signature_name = value
        elif key == "version":
            request.model_spec.version.value = value
    return request


@pytest.mark.parametrize(
    "request_factory, code, fragments",
    [
        # TF Serving's wording, which its clients match on.
        (lambda: _predict_with(model="nope"), grpc.StatusCode.NOT_FOUND, ["Servable not found for request: Latest(nope)"]),
        (lambda: _predict_with(version=7), grpc.StatusCode.NOT_FOUND,
         [f"Servable not found for request: Specific({MODEL}, 7)"]),
        (lambda: _predict_with(signature="bogus"), grpc.StatusCode.FAILED_PRECONDITION, ['Serving signature key "bogus" not found.']),
        (lambda: predict_request(MODEL, [jpeg(1)], input_key="pictures"), grpc.StatusCode.INVALID_ARGUMENT, ["pictures"]),
        (lambda: predict_request(MODEL, []), grpc.StatusCode.INVALID_ARGUMENT, ["images", "empty"]),
        (lambda: predict_request(MODEL, [b"not an image"]), grpc.StatusCode.INVALID_ARGUMENT, ["images[0]"]),
        (lambda: predict_request(MODEL, [jpeg(1)] * 17), grpc.StatusCode.INVALID_ARGUMENT, ["at most 16"]),
    ],
    ids=["unknown-model", "unknown-version", "unknown-signature", "wrong-input-name", "empty-batch",
         "undecodable", "too-many-images"],
)
def test_bad_requests_get_actionable_status(stub, request_factory, code, fragments):
    assert_status(lambda: stub.Predict(request_factory(), 10.0), code, *fragments)
    assert stub.Predict(predict_request(MODEL, [jpeg(6)]), 10.0).outputs["scores"].tensor_shape.dim[0].size == 1


def test_wrong_dtype_and_shape_are_invalid_argument(stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([1.0, 2.0]))
    assert_status(lambda: stub.Predict(request, 10.0), grpc.StatusCode.INVALID_ARGUMENT, "DT_STRING", "DT_FLOAT")
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([[jpeg(1), jpeg(2)]], shape=[1, 2]))
    assert_status(lambda: stub.Predict(request, 10.0), grpc.StatusCode.INVALID_ARGUMENT, "[N] or [N, 1]", "[1, 2]")
    request.inputs["extra"].CopyFrom(tf.make_tensor_proto([jpeg(1)], shape=[1]))
    assert_status(lambda: stub.Predict(request, 10.0), grpc.StatusCode.INVALID_ARGUMENT, "extra")


def test_classify_without_image_feature_names_the_example(stub):
    request = classify_request(MODEL, [jpeg(1), jpeg(2)])
    del request.input.example_list.examples[1].features.feature["image/encoded"]
    assert_status(lambda: stub.Classify(request, 10.0), grpc.StatusCode.INVALID_ARGUMENT, "examples[1]", "image/encoded")


def test_bad_image_fails_its_request_alone_with_its_index(stub):
    """Acceptance 5: a request whose 2nd image is not an image fails naming index 1; its neighbours succeed."""
    good_requests = [predict_request(MODEL, [jpeg(100 + i)]) for i in range(12)]
    bad_request = predict_request(MODEL, [jpeg(200), b"\x89PNG\r\n\x1a\n truncated", jpeg(201)])
    futures = [stub.Predict.future(r, 10.0) for r in good_requests[:6]]
    bad_future = stub.Predict.future(bad_request, 10.0)
    futures += [stub.Predict.future(r, 10.0) for r in good_requests[6:]]
    with pytest.raises(grpc.RpcError) as caught:
        bad_future.result()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images[1]" in caught.value.details()
    for future in futures:
        assert predict_outputs(future.result())[1].shape == (1, 5)


def test_tf_serving_flags_unix_socket_channel_arguments_and_no_effect_warnings(tiny_model_base, tmp_path):
    from rest_client import b64, rest_call
    from server_process import ServerProcess

    socket_path = tmp_path / "tfs.sock"
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/custom/metrics" }')
    with ServerProcess(
        tiny_model_base, f"--grpc_socket_path={socket_path}", f"--monitoring_config_file={monitoring}", "--grpc_channel_arguments=grpc.max_concurrent_streams=8",
        "--rest_api_num_threads=16", "--enable_model_warmup=false", "--tensorflow_session_parallelism=1",
        "--rest_api_timeout_in_ms=1", model_name=MODEL,
    ) as server:
        # A REST request's deadline is --rest_api_timeout_in_ms from its arrival: 1 ms is over before it runs.
        status, body = rest_call(
            server.metrics_port, "POST", f"/v1/models/{MODEL}:predict",
            {"signature_name": "predict_images", "instances": [b64(jpeg(3))]},
        )
        assert status == 504 and "deadline" in body["error"], body
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                predict_request(MODEL, [jpeg(2)]), 10.0
            )
        assert response.outputs["scores"].tensor_shape.dim[0].size == 1
        assert "inference_requests_total" in server.metrics_text("/custom/metrics")
        warnings = [line for line in server.log_lines if "has no effect here" in line]
        assert len(warnings) == 1 and "--rest_api_num_threads" in warnings[0]
