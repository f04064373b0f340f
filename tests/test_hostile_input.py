"""Bad-input corpus against the real server: each case gets its status and a message naming the problem,
and after each one the server is still SERVING and answers a good request.

Animated GIFs are served from their first frame (the model's decode_image runs with
expand_animations=False); the test checks the scores equal those of that frame alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from hostile_inputs import BOMBS, UNDECODABLE_IMAGES, VALID_ODD_IMAGES, animated_gif
from imaging import jpeg
from server_process import ServerProcess
from tf_serving_client import classify_request, image_example, predict_outputs, predict_request

MODEL = "tiny"
MAX_IMAGES = 8
MAX_PIXELS = 1_000_000
MAX_MESSAGE = 1_000_000
OK, IA, NF, RE, FP, UNIMPL = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
)


@pytest.fixture(scope="module")
def server(tiny_model_base):
    with ServerProcess(
        tiny_model_base, "--enable_batching=true", "--max_batch_size=4", f"--max_images_per_request={MAX_IMAGES}",
        f"--max_image_pixels={MAX_PIXELS}", f"--grpc_max_message_bytes={MAX_MESSAGE}", model_name=MODEL,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def channel(server):
    with server.channel() as opened:
        yield opened


@dataclass(frozen=True)
class Case:
    method: str  # PredictionService / ModelService method, or "raw:<full method path>"
    request: Callable[[], Any]
    code: grpc.StatusCode
    fragments: tuple[str, ...] = ()


def tensor(dtype: int, shape: list[int], **values: Any) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(
        dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in shape])
    )
    for field, content in values.items():
        if field == "tensor_content":
            proto.tensor_content = content
        else:
            getattr(proto, field).extend(content)
    return proto


def predict(inputs: dict[str, tensor_pb2.TensorProto] | None = None, *, model: str = MODEL,
            signature: str = "predict_images", version: int | None = None, label: str = "",
            output_filter: tuple[str, ...] = ()) -> Callable[[], predict_pb2.PredictRequest]:
    def build() -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        if label:
            request.model_spec.version_label = label
        for key, value in (inputs if inputs is not None else {"images": images_tensor([jpeg(5)])}).items():
            request.inputs[key].CopyFrom(value)
        request.output_filter.extend(output_filter)
        return request

    return build


def images_tensor(images: list[bytes]) -> tensor_pb2.TensorProto:
    return tensor(types_pb2.DT_STRING, [len(images)], string_val=images)


def examples_request(serialized: list[bytes]) -> Callable[[], predict_pb2.PredictRequest]:
    return predict({"inputs": images_tensor(serialized)}, signature="serving_default")


def example_with(feature: feature_pb2.Feature, key: str = "image/encoded") -> example_pb2.Example:
    return example_pb2.Example(features=feature_pb2.Features(feature={key: feature}))


def classify(examples: list[example_pb2.Example], *, model: str = MODEL, signature: str = "",
             context: example_pb2.Example | None = None) -> Callable[[], classification_pb2.ClassificationRequest]:
    def build() -> classification_pb2.ClassificationRequest:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        if context is not None:
            request.input.example_list_with_context.context.CopyFrom(context)
            request.input.example_list_with_context.examples.extend(examples)
        else:
            request.input.example_list.examples.extend(examples)
        return request

    return build


def pixels(shape: list[int], dtype: int = types_pb2.DT_FLOAT, count: int | None = None) -> tensor_pb2.TensorProto:
    n = int(np.prod(shape)) if count is None else count
    return tensor(dtype, shape, tensor_content=np.full(n, 0.5, "<f4").tobytes())


def metadata(model: str = MODEL, fields: tuple[str, ...] = ("signature_def",)) -> Callable[[], Any]:
    def build() -> get_model_metadata_pb2.GetModelMetadataRequest:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
        request.model_spec.name = model
        return request

    return build


def status(model: str = MODEL, version: int | None = None) -> Callable[[], Any]:
    def build() -> get_model_status_pb2.GetModelStatusRequest:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        return request

    return build


def raw(payload: bytes) -> Callable[[], bytes]:
    return lambda: payload


GOOD = jpeg(5)
BYTES = lambda value: feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=value))  # noqa: E731
PREDICT_PATH = "raw:/tensorflow.serving.PredictionService/Predict"

CASES: dict[str, Case] = {}
for name, image in VALID_ODD_IMAGES.items():
    CASES[f"image-ok-{name}"] = Case("Predict", predict({"images": images_tensor([image])}), OK)
for name, image in UNDECODABLE_IMAGES.items():
    CASES[f"image-undecodable-{name}"] = Case(
        "Predict", predict({"images": images_tensor([image])}), IA, ("images[0]", "not a decodable image")
    )
for name, image in BOMBS.items():
    CASES[f"image-too-large-{name}"] = Case(
        "Predict", predict({"images": images_tensor([image])}), IA, ("images[0]", "--max_image_pixels")
    )
CASES.update({
    "bomb-declared-pixel-count": Case("Predict", predict({"images": images_tensor([BOMBS["jpeg-60000x60000"]])}),
                                      IA, ("declares 3600000000 pixels", str(MAX_PIXELS))),
    "bomb-under-pillow-limit": Case("Predict", predict({"images": images_tensor([BOMBS["png-10000x10000"]])}),
                                    IA, ("declares 100000000 pixels", "10000x10000", str(MAX_PIXELS))),
    "second-image-bad": Case("Predict", predict({"images": images_tensor([GOOD, b"junk", GOOD])}), IA, ("images[1]",)),
    "third-image-bomb": Case("Predict", predict({"images": images_tensor([GOOD, GOOD, BOMBS["png-50000x50000"]])}),
                             IA, ("images[2]", "pixels")),
    "dtype-float": Case("Predict", predict({"images": tensor(types_pb2.DT_FLOAT, [2], float_val=[1.0, 2.0])}),
                        IA, ("DT_STRING", "DT_FLOAT")),
    "dtype-int32": Case("Predict", predict({"images": tensor(types_pb2.DT_INT32, [1], int_val=[7])}), IA, ("DT_INT32",)),
    "dtype-int64": Case("Predict", predict({"images": tensor(types_pb2.DT_INT64, [1], int64_val=[7])}), IA, ("DT_INT64",)),
    "dtype-bool": Case("Predict", predict({"images": tensor(types_pb2.DT_BOOL, [1], bool_val=[True])}), IA, ("DT_BOOL",)),
    "dtype-invalid-enum": Case("Predict", predict({"images": tensor(9999, [1])}), IA, ("9999", "not supported")),
    "shape-scalar": Case("Predict", predict({"images": tensor(types_pb2.DT_STRING, [], string_val=[GOOD])}), IA, ("[N] or [N, 1]", "got []")),
    "shape-2d": Case("Predict", predict({"images": tensor(types_pb2.DT_STRING, [1, 2], string_val=[GOOD, GOOD])}),
                     IA, ("[N] or [N, 1]", "[1, 2]")),
    "shape-one-column": Case("Predict", predict({"images": tensor(types_pb2.DT_STRING, [1, 1], string_val=[GOOD])}), OK),
    "shape-unknown-rank": Case("Predict", predict({"images": tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(unknown_rank=True), string_val=[GOOD])}),
        IA, ("unknown rank",)),
    # TensorFlow's rule for a short value list (Tensor::FromProto): the last value fills the declared shape.
    "shape-declares-more-than-sent": Case("Predict", predict({"images": tensor(types_pb2.DT_STRING, [3], string_val=[GOOD])}),
                                          OK),
    "shape-negative-dim": Case("Predict", predict({"images": tensor(types_pb2.DT_STRING, [-1], string_val=[GOOD])}),
                               IA, ("[-1]",)),
    "empty-batch": Case("Predict", predict({"images": images_tensor([])}), IA, ("empty",)),
    "batch-over-max": Case("Predict", predict({"images": images_tensor([GOOD] * (MAX_IMAGES + 1))}),
                           IA, (f"at most {MAX_IMAGES}", "--max_images_per_request")),
    "unknown-model": Case("Predict", predict(model="nope"), NF, ("nope",)),
    "empty-model-name": Case("Predict", predict(model=""), NF, ("Servable not found for request: Latest()",)),
    "unknown-version": Case("Predict", predict(version=7), NF, (f"Servable not found for request: Specific({MODEL}, 7)",)),
    "version-label": Case("Predict", predict(label="stable"), IA, ("Unrecognized servable version label: stable",)),
    "unknown-signature": Case("Predict", predict(signature="bogus"), FP, ('Serving signature key "bogus" not found.',)),
    "preprocess-signature": Case("Predict", predict(signature="preprocess"), IA,
                                 ("input tensor alias not found in signature: images", "{image}")),
    "missing-input": Case("Predict", predict({}), IA, ("Missing but required: {images}",)),
    "misnamed-input": Case("Predict", predict({"pictures": images_tensor([GOOD])}), IA, ("pictures",)),
    "extra-input": Case("Predict", predict({"images": images_tensor([GOOD]), "extra": images_tensor([GOOD])}),
                        IA, ("extra",)),
    "unknown-output-filter": Case("Predict", predict(output_filter=("logits",)), IA, ("logits",)),
    "example-malformed-bytes": Case("Predict", examples_request([b"\xff\xff\xff garbage"]), IA,
                                    ("inputs[0]", "tf.Example")),
    "example-without-image": Case("Predict", examples_request([example_with(BYTES([GOOD]), "image/other")
                                                              .SerializeToString()]), IA, ("inputs[0]", "image/encoded")),
    "example-image-as-int64": Case("Predict", examples_request([example_with(feature_pb2.Feature(
        int64_list=feature_pb2.Int64List(value=[1]))).SerializeToString()]), IA, ("image/encoded",)),
    "example-two-images": Case("Predict", examples_request([example_with(BYTES([GOOD, GOOD])).SerializeToString()]),
                               IA, ("exactly one", "holds 2")),
    "example-undecodable-image": Case("Predict", examples_request([image_example(b"junk").SerializeToString()]),
                                      IA, ("inputs[0]", "not a decodable image")),
    "example-bomb": Case("Predict", examples_request([image_example(BOMBS["gif-65535x65535"]).SerializeToString()]),
                         IA, ("inputs[0]", "pixels")),
    "classify-no-input": Case("Classify", lambda: classification_pb2.ClassificationRequest(
        model_spec={"name": MODEL}), IA, ("Input is empty",)),
    "classify-empty-examples": Case("Classify", classify([]), IA, ("empty",)),
    "classify-without-image": Case("Classify", classify([image_example(GOOD), example_pb2.Example()]),
                                   IA, ("examples[1]", "image/encoded")),
    "classify-undecodable": Case("Classify", classify([image_example(b"\x89PNG\r\n\x1a\n")]), IA, ("examples[0]",)),
    "classify-wrong-signature": Case("Classify", classify([image_example(GOOD)], signature="predict_images"),
                                     IA, ("No classification inputs found in SignatureDef 'predict_images'",)),
    "classify-unknown-model": Case("Classify", classify([image_example(GOOD)], model="nope"), NF, ("nope",)),
    "classify-image-from-context": Case("Classify", classify([example_pb2.Example()], context=image_example(GOOD)), OK),
    "pixels-wrong-dtype": Case("Predict", predict({"pixels": images_tensor([GOOD])}, signature="classify_pixels"),
                               IA, ("DT_FLOAT",)),
    "pixels-wrong-size": Case("Predict", predict({"pixels": pixels([1, 16, 16, 3])}, signature="classify_pixels"),
                              IA, ("shape", "[1, 16, 16, 3]")),
    "pixels-3d": Case("Predict", predict({"pixels": pixels([32, 32, 3])}, signature="classify_pixels"), IA, ("shape",)),
    "pixels-content-short": Case("Predict", predict({"pixels": pixels([1, 32, 32, 3], count=10)},
                                                    signature="classify_pixels"), IA, ("holds 40 bytes (10 values)",)),
    "pixels-content-odd-bytes": Case("Predict", predict({"pixels": tensor(types_pb2.DT_FLOAT, [1, 32, 32, 3],
                                     tensor_content=b"\0")}, signature="classify_pixels"), IA, ("whole number of DT_FLOAT values",)),
    "pixels-negative-dims": Case("Predict", predict({"pixels": tensor(types_pb2.DT_FLOAT, [-1, -1],
                                 float_val=[1.0])}, signature="classify_pixels"), IA, ("must be non-negative",)),
    "pixels-overflowing-dims": Case("Predict", predict({"pixels": tensor(types_pb2.DT_FLOAT, [2**62, 2**62, 4],
                                    float_val=[1.0])}, signature="classify_pixels"), IA, ("exceeds",)),
    "pixels-zero-size-huge-dims": Case("Predict", predict({"pixels": tensor(types_pb2.DT_FLOAT, [2**62, 0, 2**62])},
                                       signature="classify_pixels"), IA, ("exceeds",)),
    "pixels-ok": Case("Predict", predict({"pixels": pixels([2, 32, 32, 3])}, signature="classify_pixels"), OK),
    "metadata-unknown-model": Case("GetModelMetadata", metadata(model="nope"), NF, ("nope",)),
    "metadata-bad-field": Case("GetModelMetadata", metadata(fields=("weights",)), IA, ("signature_def",)),
    "status-unknown-model": Case("GetModelStatus", status(model="nope"), NF, ("nope",)),
    "status-unknown-version": Case("GetModelStatus", status(version=9), NF, (f"Could not find version 9 of model {MODEL}",)),
    "regress-no-model": Case("Regress", lambda: regression_pb2.RegressionRequest(), NF,
                             ("Servable not found for request: Latest()",)),
    "regress-on-a-classifier": Case("Regress", lambda: regression_pb2.RegressionRequest(
        model_spec={"name": MODEL}, input={"example_list": {"examples": [image_example(GOOD)]}}), IA,
        ("Expected one output Tensor.",)),
    "multi-inference-no-tasks": Case("MultiInference", lambda: inference_pb2.MultiInferenceRequest(), IA,
                                     ("Tasks is empty",)),
    "multi-inference-two-models": Case("MultiInference", lambda: inference_pb2.MultiInferenceRequest(
        tasks=[{"model_spec": {"name": MODEL}, "method_name": "tensorflow/serving/classify"},
               {"model_spec": {"name": "other"}, "method_name": "tensorflow/serving/classify"}]), IA,
        ("same model name",)),
    "multi-inference-unknown-method": Case("MultiInference", lambda: inference_pb2.MultiInferenceRequest(
        tasks=[{"model_spec": {"name": MODEL}, "method_name": "tensorflow/serving/predict"}]), IA,
        ("Unsupported signature method_name: tensorflow/serving/predict",)),
    "oversized-message": Case("Predict", predict({"images": images_tensor([bytes(MAX_MESSAGE + 1)])}),
                              RE, ("larger than max",)),
    "oversized-batch-of-small-images": Case("Predict", predict({"images": images_tensor([bytes(200_000)] * 6)}),
                                            RE, ("larger than max",)),
    "wire-garbage": Case(PREDICT_PATH, raw(b"\xff\xff\xff\xff garbage"), IA, ("not a valid message", "PredictRequest")),
    "wire-truncated-field": Case(PREDICT_PATH, raw(b"\x12"), IA, ("not a valid message",)),
    "wire-bad-length-prefix": Case(PREDICT_PATH, raw(b"\x0a\xff\xff\xff\xff\x0f"), IA, ("not a valid message",)),
    "wire-bad-utf8-model-name": Case(PREDICT_PATH, raw(b"\x0a\x04\x0a\x02\xc3\x28"), IA, ("not a valid message",)),
    "wire-classify-garbage": Case("raw:/tensorflow.serving.PredictionService/Classify", raw(b"\x0a\x05hello"),
                                  IA, ("ClassificationRequest",)),
    "wire-status-garbage": Case("raw:/tensorflow.serving.ModelService/GetModelStatus", raw(b"\x0a\x05hello"),
                                IA, ("GetModelStatusRequest",)),
    "wire-unknown-fields-only": Case(PREDICT_PATH, raw(b"\xa8\x1f\x01"), NF, ("Servable not found for request: Latest()",)),
    "wire-unknown-method": Case("raw:/tensorflow.serving.PredictionService/Explode", raw(b""), UNIMPL, ()),
})


def call(channel: grpc.Channel, case: Case) -> Any:
    if case.method.startswith("raw:"):
        return channel.unary_unary(case.method[4:])(case.request(), timeout=30)
    if case.method == "GetModelStatus":
        return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(case.request(), timeout=30)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return getattr(stub, case.method)(case.request(), timeout=30)


def assert_still_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        predict_request(MODEL, [jpeg(6)]), timeout=30
    )
    assert predict_outputs(response)[1].shape == (1, 5)


def test_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert {case.code for case in CASES.values()} >= {OK, IA, NF, RE}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_gets_its_status_and_server_keeps_serving(channel, name):
    case = CASES[name]
    if case.code is OK:
        response = call(channel, case)
        if case.method == "Predict":
            assert predict_outputs(response)[1].shape[1] == 5
        else:
            assert len(response.result.classifications[0].classes) == 5
    else:
        with pytest.raises(grpc.RpcError) as caught:
            call(channel, case)
        assert caught.value.code() == case.code, caught.value.details()
        for fragment in case.fragments:
            assert fragment in caught.value.details(), caught.value.details()
    assert_still_serving(channel)


def test_animated_gif_is_classified_by_its_first_frame(channel):
    animated, first_frame = animated_gif()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    scores_animated = predict_outputs(stub.Predict(predict_request(MODEL, [animated]), timeout=30))[1]
    scores_first = predict_outputs(stub.Predict(predict_request(MODEL, [first_frame]), timeout=30))[1]
    np.testing.assert_allclose(scores_animated, scores_first, atol=1e-6)


def test_bad_input_is_logged_without_tracebacks(server, channel):
    """Client errors are the client's: no ERROR lines or tracebacks in the server's log for them."""
    for name in ("wire-garbage", "image-too-large-jpeg-60000x60000", "image-undecodable-random-64k"):
        with pytest.raises(grpc.RpcError):
            call(channel, CASES[name])
    assert_still_serving(channel)
    python_errors = [line for line in server.log_lines if re.match(r"\d{4}-\d\d-\d\d .* (ERROR|CRITICAL) ", line)]
    assert "Traceback" not in server.log and not python_errors, server.log[-3000:]
