"""Any SavedModel a TF Serving user has, served by the real server and checked against the model run in-process.

One server serves the whole corpus (tests/model_corpus.py) from a model config file; each test calls it as a
TF Serving client would and compares with `run_in_process`.
"""

from __future__ import annotations

import concurrent.futures
from functools import partial
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from service.tensors.tensor_proto import from_array, to_array

from model_corpus import (
    KERAS_INPUT_KEY,
    KERAS_OUTPUT_KEY,
    KERAS_SAVED_MODEL_KEYS,
    TF2_EXAMPLE_CLASSES,
    TF_KERAS_EXPORT_KEYS,
    TUTORIAL_LABELS,
    encode_test_jpegs,
    make_example,
    multi_io_example_inputs,
    run_in_process,
    write_half_plus_three_tf1_legacy,
    write_half_plus_two_tf1,
    write_keras_saved_model,
    write_keras_sequential,
    write_tf2_example_module,
    write_tf_keras_export,
    write_multi_io,
    write_no_batch_dim,
    write_tf2_module_unknown_shape,
    write_model_config,
    write_tutorial_inception_style,
)
from server_process import ServerProcess

BUILDERS = {
    "half_plus_two": write_half_plus_two_tf1,
    "tf2_module": write_tf2_module_unknown_shape,
    "keras": write_keras_sequential,
    "multi_io": write_multi_io,
    "no_batch": write_no_batch_dim,
    "tutorial": write_tutorial_inception_style,
    "half_plus_three": write_half_plus_three_tf1_legacy,
    "tf2_examples": write_tf2_example_module,
    "keras3_saved_model": partial(write_keras_saved_model, flavour="keras3"),
    "tf_keras_saved_model": partial(write_keras_saved_model, flavour="tf_keras"),
    "tf_keras_export": write_tf_keras_export,
}
# The Keras models' default signature: (input key, output key).
KERAS_KEYS = {
    "keras": (KERAS_INPUT_KEY, KERAS_OUTPUT_KEY),
    "keras3_saved_model": KERAS_SAVED_MODEL_KEYS["keras3"],
    "tf_keras_saved_model": KERAS_SAVED_MODEL_KEYS["tf_keras"],
    "tf_keras_export": TF_KERAS_EXPORT_KEYS,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def server(corpus: dict[str, Path]) -> Iterator[ServerProcess]:
    config = write_model_config(corpus["half_plus_two"].parent.parent / "models.config",
                                {name: path.parent for name, path in corpus.items()})
    with ServerProcess(
        corpus["half_plus_two"].parent, f"--model_config_file={config}", "--enable_batching=true",
        "--max_batch_size=8", "--allowed_batch_sizes=4,8", "--batch_timeout_micros=20000", model_name="ignored",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with server.channel() as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def predict(stub, model: str, inputs: dict[str, np.ndarray], signature: str = "", output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(from_array(np.asarray(array)))
    request.output_filter.extend(output_filter)
    return stub.Predict(request, timeout=30)


def outputs_of(response) -> dict[str, np.ndarray]:
    return {name: to_array(tensor, name) for name, tensor in response.outputs.items()}


def assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        value = np.asarray(value)
        assert actual[name].dtype == value.dtype, name
        assert actual[name].shape == value.shape, name
        if value.dtype == object:
            assert actual[name].tolist() == value.tolist(), name
        else:
            np.testing.assert_allclose(actual[name].astype(np.float64), value.astype(np.float64), rtol=1e-6,
                                       err_msg=name)


def test_tf1_half_plus_two_predicts_like_the_saved_model(stub, corpus):
    x = np.array([[1.0], [2.0], [5.0]], dtype=np.float32)
    response = predict(stub, "half_plus_two", {"x": x})
    assert_same(outputs_of(response), run_in_process(corpus["half_plus_two"], x=x))
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]  # TF Serving's default: typed values
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1


def test_a_tensor_shorter_than_its_shape_repeats_its_last_value(stub):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    tensor = request.inputs["x"]
    tensor.dtype = from_array(np.zeros(1, np.float32)).dtype
    tensor.tensor_shape.dim.add(size=3)
    tensor.tensor_shape.dim.add(size=1)
    tensor.float_val.extend([2.0])
    outputs = outputs_of(stub.Predict(request, timeout=30))
    np.testing.assert_allclose(outputs["y"], [[3.0], [3.0], [3.0]])


def test_a_request_larger_than_a_batch_is_split_and_padded(stub, corpus, server):
    """11 rows with max_batch_size 8 and allowed sizes 4, 8: batches of 8 and 3 (padded to 4), joined again."""
    x = np.linspace(-2, 2, 44, dtype=np.float32).reshape(11, 4)
    padded_before = server.metric_value("inference_padded_batch_size_sum", 'model="keras"')
    assert_same(outputs_of(predict(stub, "keras", {KERAS_INPUT_KEY: x})),
                run_in_process(corpus["keras"], **{KERAS_INPUT_KEY: x}))
    assert server.metric_value("inference_padded_batch_size_sum", 'model="keras"') - padded_before == 12


def test_tf2_unknown_shape_signature_runs_unbatched(stub, corpus):
    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    assert_same(outputs_of(predict(stub, "tf2_module", {"x": x})), run_in_process(corpus["tf2_module"], x=x))
    scalar = np.float32(4.0)
    assert_same(outputs_of(predict(stub, "tf2_module", {"x": scalar})),
                run_in_process(corpus["tf2_module"], x=scalar))


def test_output_filter_returns_only_the_named_outputs(stub, corpus):
    x = np.ones((2, 3), dtype=np.float32)
    response = predict(stub, "tf2_module", {"x": x}, signature="scaled", output_filter=["total"])
    expected = run_in_process(corpus["tf2_module"], "scaled", x=x)
    assert_same(outputs_of(response), {"total": expected["total"]})
    with pytest.raises(grpc.RpcError) as refused:
        predict(stub, "tf2_module", {"x": x}, signature="scaled", output_filter=["nope"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: nope" in refused.value.details()


def test_keras_sequential(stub, corpus):
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    assert_same(outputs_of(predict(stub, "keras", {KERAS_INPUT_KEY: x})),
                run_in_process(corpus["keras"], **{KERAS_INPUT_KEY: x}))
    assert_same(outputs_of(predict(stub, "keras", {KERAS_INPUT_KEY: x}, signature="serve")),
                run_in_process(corpus["keras"], "serve", **{KERAS_INPUT_KEY: x}))


def test_multi_input_multi_output_of_many_dtypes(stub, corpus):
    inputs = multi_io_example_inputs()
    assert_same(outputs_of(predict(stub, "multi_io", inputs)), run_in_process(corpus["multi_io"], **inputs))


@pytest.mark.parametrize("signature, values", [
    ("complex_sig", np.array([1 + 2j, -3.5j], dtype=np.complex64)),
    ("bf16", np.array([1.5, -2.0, 3.25], dtype="bfloat16")),
])
def test_complex_and_bfloat16_tensors(stub, corpus, signature, values):
    expected = run_in_process(corpus["multi_io"], signature, x=values)
    actual = outputs_of(predict(stub, "multi_io", {"x": values}, signature=signature))
    assert actual["y"].dtype == expected["y"].dtype
    np.testing.assert_array_equal(actual["y"].astype(np.complex128), expected["y"].astype(np.complex128))


def test_signature_without_batch_dimension(stub, corpus):
    matrix = np.array([[2.0, 1.0], [1.0, 3.0]], dtype=np.float32)
    assert_same(outputs_of(predict(stub, "no_batch", {"matrix": matrix})),
                run_in_process(corpus["no_batch"], matrix=matrix))
    with pytest.raises(grpc.RpcError) as refused:
        predict(stub, "no_batch", {"matrix": np.ones((3, 2), np.float32)})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "matrix" in refused.value.details()


def test_tutorial_inception_is_batched_and_matches_its_own_predict_images(stub, corpus, server):
    images = encode_test_jpegs(6, size=40)
    expected = run_in_process(corpus["tutorial"], "predict_images", images=np.array(images, dtype=object))
    batches_before = server.metric_value("inference_batch_size_count", 'model="tutorial"')
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda image: outputs_of(predict(stub, "tutorial", {"images": np.array([image], dtype=object)},
                                             signature="predict_images")),
            images,
        ))
    for row, answer in enumerate(answers):
        assert answer["classes"].tolist() == expected["classes"][row:row + 1].tolist()
        np.testing.assert_allclose(answer["scores"], expected["scores"][row:row + 1], rtol=1e-5)
    assert set(answers[0]["classes"][0].tolist()) <= {label.encode() for label in TUTORIAL_LABELS}
    batches = server.metric_value("inference_batch_size_count", 'model="tutorial"') - batches_before
    assert 1 <= batches < 6  # six concurrent one-image requests shared batches


def test_classify_on_a_tf_example_signature(stub, corpus):
    images = encode_test_jpegs(2, size=40)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tutorial"
    for image in images:
        request.input.example_list.examples.add().features.feature["image/encoded"].bytes_list.value.append(image)
    response = stub.Classify(request, timeout=30)
    expected = run_in_process(corpus["tutorial"], "predict_images", images=np.array(images, dtype=object))
    assert response.model_spec.signature_name == "serving_default"
    for row, classifications in enumerate(response.result.classifications):
        assert [c.label.encode() for c in classifications.classes] == expected["classes"][row].tolist()
        np.testing.assert_allclose([c.score for c in classifications.classes], expected["scores"][row], rtol=1e-5)


def _x_examples(values, request_input, with_context=False):
    if with_context:
        listed = request_input.example_list_with_context
        listed.context.features.feature["unused"].float_list.value.append(0.0)
    else:
        listed = request_input.example_list
    for value in values:
        listed.examples.add().features.feature["x"].float_list.value.append(value)


@pytest.mark.parametrize("with_context", [False, True])
def test_regress_and_classify_half_plus_two(stub, with_context):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    _x_examples([1.0, 4.0], request.input, with_context)
    response = stub.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [2.5, 4.0]
    assert response.model_spec.signature_name == "regress_x_to_y"

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    _x_examples([0.0], request.input, with_context)
    response = stub.Classify(request, timeout=30)
    assert [c.score for c in response.result.classifications[0].classes] == [2.0]
    assert response.result.classifications[0].classes[0].label == ""


def _multi_inference_request(model: str, tasks, values) -> inference_pb2.MultiInferenceRequest:
    """One task per (signature, method), all on examples with the float feature "x"."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        task.method_name = method
    _x_examples(values, request.input)
    return request


def test_multi_inference_runs_each_task(stub):
    request = _multi_inference_request("half_plus_two", [("regress_x_to_y", "tensorflow/serving/regress"),
                                                         ("classify_x_to_y", "tensorflow/serving/classify")], [2.0])
    response = stub.MultiInference(request, timeout=30)
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].score == 3.0
    request.tasks[1].model_spec.signature_name = "regress_x_to_y"
    with pytest.raises(grpc.RpcError) as refused:
        stub.MultiInference(request, timeout=30)
    assert "Duplicate evaluation of signature: regress_x_to_y" in refused.value.details()


@pytest.mark.parametrize("call, signature, message", [
    ("Regress", "classify_x_to_y", "No regression outputs found in SignatureDef 'classify_x_to_y'"),
    ("Classify", "regress_x_to_y",
     'Expected classification signature outputs to contain at least one of "classes" or "scores"'),
    ("Classify", "serving_default", "No classification inputs found in SignatureDef 'serving_default'"),
])
def test_a_method_that_does_not_fit_the_signature_is_refused(stub, call, signature, message):
    """TF Serving's default: the method name is not checked, the signature's inputs and outputs are."""
    request = (regression_pb2.RegressionRequest if call == "Regress" else classification_pb2.ClassificationRequest)()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = signature
    _x_examples([1.0], request.input)
    with pytest.raises(grpc.RpcError) as refused:
        getattr(stub, call)(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in refused.value.details()


@pytest.mark.parametrize("inputs, code, message", [
    ({"y": np.ones((1, 1), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT,
     "input tensor alias not found in signature: y. Inputs expected to be in the set {x}."),
    ({"x": np.ones((1, 1), np.int64)}, grpc.StatusCode.INVALID_ARGUMENT, "input 'x' is DT_INT64"),
    ({"x": np.float32(1.0)}, grpc.StatusCode.INVALID_ARGUMENT, "input 'x' is a scalar"),
    ({"x": np.ones((0, 1), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT, "0 rows"),
])
def test_bad_inputs_are_named(stub, inputs, code, message):
    with pytest.raises(grpc.RpcError) as refused:
        predict(stub, "half_plus_two", inputs)
    assert refused.value.code() == code
    assert message in refused.value.details()


def test_a_tf2_model_refuses_a_shape_its_signature_does_not_take(stub):
    with pytest.raises(grpc.RpcError) as refused:
        predict(stub, "keras", {KERAS_INPUT_KEY: np.ones((1, 3), np.float32)})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input '{KERAS_INPUT_KEY}' has shape [1, 3]; signature 'serving_default' takes [-1, 4]" in refused.value.details()


def test_a_tf1_graph_is_fed_like_a_session_whatever_the_declared_shape(server, stub):
    """TF Serving's REST example for half_plus_two sends x as a vector although the signature declares
    [-1, 1]; a TF1 Session feeds it as it is, and so do we."""
    assert rest(server, "half_plus_two", "predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200, {"predictions": [2.5, 3.0, 4.5]})
    assert outputs_of(predict(stub, "half_plus_two", {"x": np.array([1.0, 2.0], np.float32)}))["y"].tolist() == [2.5, 3.0]


def test_unknown_signature_is_failed_precondition(stub):
    with pytest.raises(grpc.RpcError) as refused:
        predict(stub, "half_plus_two", {"x": np.ones((1, 1), np.float32)}, signature="nope")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details() == 'Serving signature key "nope" not found.'


def test_a_bad_example_fails_its_own_request_only(stub):
    """A request whose tf.Example TensorFlow cannot parse fails alone, even when batched with good ones."""
    def regress(serialized: bytes):
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.signature_name = "regress_x_to_y"
        example = request.input.example_list.examples.add()
        example.ParseFromString(serialized)
        return stub.Regress.future(request, timeout=30)

    good = example_pb2.Example()
    good.features.feature["x"].float_list.value.append(2.0)
    bad = example_pb2.Example()
    bad.features.feature["x"].bytes_list.value.append(b"not a float")
    futures = [regress(good.SerializeToString()) for _ in range(3)] + [regress(bad.SerializeToString())]
    futures += [regress(good.SerializeToString()) for _ in range(3)]
    for index, future in enumerate(futures):
        if index == 3:
            with pytest.raises(grpc.RpcError) as refused:
                future.result()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            assert future.result().result.regressions[0].value == 3.0


def test_metadata_returns_the_signature_def_map_of_any_model(stub, corpus):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "multi_io"
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "complex_sig", "bf16"} <= set(signatures.signature_def)
    assert set(signatures.signature_def["serving_default"].inputs) == set(multi_io_example_inputs())


def test_saved_model_tags_pick_the_metagraph(tmp_path):
    """--saved_model_tags loads the MetaGraph with exactly those tags; a model without it is refused, naming
    the tag sets it has. (The same server answers in tensor_content, as asked.)"""
    base = tmp_path / "tagged"
    write_half_plus_two_tf1(base, tags=("serve", "gpu"))
    with ServerProcess(base, "--saved_model_tags=serve,gpu", "--enable_serialization_as_tensor_content=true",
                       model_name="tagged") as tagged:
        with tagged.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            x = np.array([[4.0]], dtype=np.float32)
            response = predict(stub, "tagged", {"x": x})
            assert outputs_of(response)["y"].tolist() == [[4.0]]
            assert response.outputs["y"].tensor_content and not response.outputs["y"].float_val
    from service.runtime.model_runtime import ModelLoadError, ModelRuntime
    with pytest.raises(ModelLoadError, match=r"no MetaGraph tagged \['serve'\].*\[\['gpu', 'serve'\]\]"):
        ModelRuntime(base / "1")


# -- the model kinds TF Serving users bring: TF1 graphs as TF 1.0 wrote them, TF2 modules, Keras ----------------


def test_a_tf1_graph_tf_serving_loads_is_served_though_tf_saved_model_load_refuses_it(stub, corpus, server):
    import tensorflow as tf

    with pytest.raises(ValueError, match="Shape must be rank 1 but is rank 0"):
        tf.saved_model.load(str(corpus["half_plus_three"]))  # why the server runs TF1 graphs in a Session
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_three"
    request.model_spec.signature_name = "regress_x_to_y"
    _x_examples([1.0, 4.0], request.input)
    regressions = [r.value for r in stub.Regress(request, timeout=30).result.regressions]
    expected = run_in_process(corpus["half_plus_three"], "regress_x_to_y",
                              inputs=np.array([make_example(x=1.0), make_example(x=4.0)], dtype=object))
    assert regressions == expected["outputs"].reshape(-1).tolist() == [3.5, 5.0]

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_three"
    request.model_spec.signature_name = "classify_x_to_y"
    _x_examples([2.0], request.input)
    assert [c.score for c in stub.Classify(request, timeout=30).result.classifications[0].classes] == [4.0]
    assert rest(server, "half_plus_three", "regress", {"signature_name": "regress_x_to_y",
                                                       "examples": [{"x": 0.0}, {"x": 2.0}]}) == (200, {"results": [3.0, 4.0]})


def test_a_tf1_graph_is_batched_and_counted_like_any_model(stub, server):
    def answered() -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in server.metrics_text().splitlines()
                   if line.startswith("inference_requests_total{")
                   and all(label in line for label in ('model="half_plus_three"', 'method="Predict"', 'code="OK"')))

    before = answered()
    predict(stub, "half_plus_three", {"x": np.array([[1.0]], np.float32)})
    assert answered() == before + 1
    assert server.metric_value("inference_batch_size_count", 'model="half_plus_three"') >= 1  # it ran as a batch


def test_tf2_module_classify_regress_and_multi_inference_though_every_method_name_is_predict(stub, corpus, server):
    values = [1.0, -3.0]
    examples = np.array([make_example(x=value) for value in values], dtype=object)
    classified = run_in_process(corpus["tf2_examples"], inputs=examples)
    regressed = run_in_process(corpus["tf2_examples"], "regress", inputs=examples)

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf2_examples"
    _x_examples(values, request.input)
    response = stub.Classify(request, timeout=30)
    assert response.model_spec.signature_name == "serving_default"
    for row, classifications in enumerate(response.result.classifications):
        assert [c.label.encode() for c in classifications.classes] == classified["classes"][row].tolist()
        np.testing.assert_allclose([c.score for c in classifications.classes], classified["scores"][row])
    assert [c.label.encode() for c in response.result.classifications[0].classes] == list(TF2_EXAMPLE_CLASSES)

    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tf2_examples"
    request.model_spec.signature_name = "regress"
    _x_examples(values, request.input)
    np.testing.assert_allclose([r.value for r in stub.Regress(request, timeout=30).result.regressions],
                               regressed["outputs"])

    request = _multi_inference_request("tf2_examples", [("serving_default", "tensorflow/serving/classify"),
                                                        ("regress", "tensorflow/serving/regress")], values)
    results = stub.MultiInference(request, timeout=30).results
    np.testing.assert_allclose([c.score for c in results[0].classification_result.classifications[1].classes],
                               classified["scores"][1])
    np.testing.assert_allclose([r.value for r in results[1].regression_result.regressions], regressed["outputs"])

    status, body = rest(server, "tf2_examples", "classify", {"examples": [{"x": value} for value in values]})
    assert status == 200, body
    assert [[label for label, _ in row] for row in body["results"]] == [[c.decode() for c in TF2_EXAMPLE_CLASSES]] * 2
    np.testing.assert_allclose([[score for _, score in row] for row in body["results"]], classified["scores"], rtol=1e-6)
    status, body = rest(server, "tf2_examples", "regress",
                        {"signature_name": "regress", "examples": [{"x": value} for value in values]})
    assert status == 200, body
    np.testing.assert_allclose(body["results"], regressed["outputs"], rtol=1e-6)


def test_the_method_name_is_checked_when_asked_to(corpus):
    config = write_model_config(corpus["tf2_examples"].parent.parent / "checked.config",
                                {name: corpus[name].parent for name in ("tf2_examples", "half_plus_two")})
    with ServerProcess(corpus["half_plus_two"].parent, f"--model_config_file={config}",
                       "--enable_signature_method_name_check=true", model_name="ignored") as checked, \
            checked.channel() as channel:
        checked_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "tf2_examples"
        _x_examples([1.0], request.input)
        with pytest.raises(grpc.RpcError) as refused:
            checked_stub.Classify(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == ("Expected classification signature method_name to be "
                                           "tensorflow/serving/classify. Was: tensorflow/serving/predict")
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.signature_name = "classify_x_to_y"
        _x_examples([1.0], request.input)
        with pytest.raises(grpc.RpcError) as refused:
            checked_stub.Regress(request, timeout=30)
        assert "Expected regression signature method_name to be tensorflow/serving/regress" in refused.value.details()
        request.model_spec.signature_name = "regress_x_to_y"  # a regress signature still answers
        assert [r.value for r in checked_stub.Regress(request, timeout=30).result.regressions] == [2.5]


# -- KServe v2 (tritonclient) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton(server: ServerProcess):
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(server.address)
    yield client
    client.close()


def triton_infer(client, model: str, inputs: dict[str, np.ndarray], outputs=(), signature: str = ""):
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import np_to_triton_dtype

    infer_inputs = []
    for name, array in inputs.items():
        infer_input = triton_grpc.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        infer_input.set_data_from_numpy(array)
        infer_inputs.append(infer_input)
    requested = [triton_grpc.InferRequestedOutput(name) for name in outputs] or None
    parameters = {"signature_name": signature} if signature else None
    return client.infer(model, infer_inputs, outputs=requested, parameters=parameters)


def test_kserve_infers_any_model_with_every_v2_datatype(triton, corpus):
    inputs = multi_io_example_inputs()
    result = triton_infer(triton, "multi_io", inputs)
    expected = run_in_process(corpus["multi_io"], **inputs)
    actual = {name: result.as_numpy(name) for name in expected}
    for name, value in expected.items():
        if value.dtype == object:
            assert actual[name].tolist() == value.tolist(), name
        else:
            assert actual[name].dtype == value.dtype, name
            np.testing.assert_array_equal(actual[name], value, err_msg=name)


def test_kserve_bfloat16_signature_and_output_selection(triton, corpus):
    import ml_dtypes

    x = np.array([1.5, -2.0, 3.25], dtype=ml_dtypes.bfloat16)
    result = triton_infer(triton, "multi_io", {"x": x}, signature="bf16")
    expected = run_in_process(corpus["multi_io"], "bf16", x=x)["y"]
    np.testing.assert_array_equal(result.as_numpy("y").astype(np.float32), expected.astype(np.float32))

    x = np.ones((2, 3), dtype=np.float32)
    result = triton_infer(triton, "tf2_module", {"x": x}, outputs=["total"], signature="scaled")
    assert [output.name for output in result.get_response().outputs] == ["total"]
    np.testing.assert_allclose(result.as_numpy("total"), run_in_process(corpus["tf2_module"], "scaled", x=x)["total"])


def test_kserve_metadata_describes_the_default_signature(triton):
    metadata = triton.get_model_metadata("keras")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [(KERAS_INPUT_KEY, "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [(KERAS_OUTPUT_KEY, "FP32", [-1, 3])]


def test_kserve_refuses_what_the_signature_does_not_take(triton):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as refused:
        triton_infer(triton, "half_plus_two", {"x": np.ones((1, 1), np.float64)})
    assert "input 'x' is DT_DOUBLE" in refused.value.message()
    with pytest.raises(InferenceServerException) as refused:
        triton_infer(triton, "half_plus_two", {"x": np.ones((1, 1), np.float32)}, outputs=["z"])
    assert "output tensor alias not found in signature: z" in refused.value.message()


# -- TF Serving REST ---------------------------------------------------------------------------------------


def rest(server: ServerProcess, model: str, verb: str, body) -> tuple[int, object]:
    from rest_client import rest_call

    return rest_call(server.metrics_port, "POST", f"/v1/models/{model}:{verb}", body)


def test_rest_predict_row_and_columnar_formats(server, corpus):
    x = [[1.0], [3.0]]
    expected = run_in_process(corpus["half_plus_two"], x=np.array(x, np.float32))["y"].tolist()
    assert rest(server, "half_plus_two", "predict", {"instances": x}) == (200, {"predictions": expected})
    assert rest(server, "half_plus_two", "predict", {"inputs": {"x": x}}) == (200, {"outputs": expected})
    assert rest(server, "half_plus_two", "predict", {"inputs": x}) == (200, {"outputs": expected})


def _json_value(array: np.ndarray):
    if array.dtype == object:
        return np.vectorize(lambda value: value.decode(), otypes=[object])(array).tolist()
    return array.tolist()


@pytest.mark.parametrize("row_format", [True, False])
def test_rest_predict_many_named_inputs_and_outputs(server, corpus, row_format):
    inputs = multi_io_example_inputs()
    expected = run_in_process(corpus["multi_io"], **inputs)
    if row_format:
        rows = len(inputs["ids"])
        body = {"instances": [{name: _json_value(value[row]) for name, value in inputs.items()} for row in range(rows)]}
    else:
        body = {"inputs": {name: _json_value(value) for name, value in inputs.items()}}
    status, answer = rest(server, "multi_io", "predict", body)
    assert status == 200, answer
    if row_format:
        columns = {name: [prediction[name] for prediction in answer["predictions"]] for name in expected}
    else:
        columns = answer["outputs"]
    for name, value in expected.items():
        if value.dtype == object:
            assert columns[name] == _json_value(value), name
        else:
            np.testing.assert_allclose(np.asarray(columns[name], dtype=np.float64), value.astype(np.float64),
                                       rtol=1e-6, err_msg=name)
    assert all(isinstance(flag, bool) for flag in columns["flag_not"])
    assert all(isinstance(number, int) for number in columns["id_plus_one"])


def test_rest_binary_strings_as_b64(server, corpus):
    from rest_client import b64

    images = encode_test_jpegs(2, size=40)
    status, body = rest(server, "tutorial", "predict",
                        {"signature_name": "predict_images", "instances": [b64(image) for image in images]})
    assert status == 200, body
    expected = run_in_process(corpus["tutorial"], "predict_images", images=np.array(images, dtype=object))
    assert [p["classes"] for p in body["predictions"]] == [[c.decode() for c in row] for row in expected["classes"]]
    np.testing.assert_allclose([p["scores"] for p in body["predictions"]], expected["scores"], rtol=1e-5)


def test_rest_classify_and_regress(server):
    status, body = rest(server, "half_plus_two", "regress",
                        {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}, {"x": 4.0}]})
    assert (status, body) == (200, {"results": [2.5, 4.0]})
    status, body = rest(server, "half_plus_two", "classify",
                        {"signature_name": "classify_x_to_y", "context": {"x": 0.0}, "examples": [{}]})
    assert status == 200, body
    assert body["results"][0][0][1] == 2.0


def test_rest_errors_name_the_problem(server):
    status, body = rest(server, "half_plus_two", "predict", {"instances": [[1.0], [1.0, 2.0]]})
    assert status == 400 and "error" in body
    status, body = rest(server, "half_plus_two", "predict", {"signature_name": "nope", "instances": [[1.0]]})
    assert (status, body) == (400, {"error": 'Serving signature key "nope" not found.'})
    status, body = rest(server, "half_plus_two", "regress", {"signature_name": "classify_x_to_y", "examples": [{}]})
    assert status == 400 and "No regression outputs found in SignatureDef" in body["error"]


def test_rest_status_and_metadata_for_any_model(server):
    from rest_client import rest_call

    status, body = rest_call(server.metrics_port, "GET", "/v1/models/keras")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = rest_call(server.metrics_port, "GET", "/v1/models/keras/metadata")
    assert status == 200
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(signature["inputs"]) == [KERAS_INPUT_KEY]


# -- hostile tensors on the named-tensor path ----------------------------------------------------------------


def _raw_tensor(dtype: int, dims: list[int], **fields) -> "tensor_pb2.TensorProto":
    from tensorflow.core.framework import tensor_pb2

    tensor = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


def _hostile_cases():
    from tensorflow.core.framework import types_pb2 as t

    return {
        "unknown-dtype": (_raw_tensor(999, [1, 1], float_val=[1.0]), "type 999"),
        "resource-dtype": (_raw_tensor(t.DT_RESOURCE, [1, 1]), "DT_RESOURCE"),
        "negative-dim": (_raw_tensor(t.DT_FLOAT, [-1, 1], float_val=[1.0]), "non-negative"),
        "overflowing-dims": (_raw_tensor(t.DT_FLOAT, [2**62, 2**62], float_val=[1.0]), "exceeds"),
        "repeat-bomb": (_raw_tensor(t.DT_FLOAT, [2**30, 1], float_val=[1.0]), "filled in by repeating"),
        "content-odd-bytes": (_raw_tensor(t.DT_FLOAT, [1, 1], tensor_content=b"\0\0\0"), "whole number"),
        "content-short": (_raw_tensor(t.DT_FLOAT, [2, 1], tensor_content=b"\0" * 4), "tensor_content holds 4 bytes"),
        "too-many-values": (_raw_tensor(t.DT_FLOAT, [1, 1], float_val=[1.0, 2.0]), "holds 2"),
        "string-for-float": (_raw_tensor(t.DT_STRING, [1, 1], string_val=[b"x"]), "DT_STRING"),
        "string-in-content": (_raw_tensor(t.DT_STRING, [1, 1], tensor_content=b"abcd"), "string_val"),
    }


@pytest.mark.parametrize("case", sorted(_hostile_cases()))
def test_hostile_tensors_are_refused_and_the_server_keeps_serving(stub, case):
    tensor, fragment = _hostile_cases()[case]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tensor)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in refused.value.details()
    good = outputs_of(predict(stub, "half_plus_two", {"x": np.array([[2.0]], np.float32)}))
    assert good["y"].tolist() == [[3.0]]


# -- every model, every protocol -------------------------------------------------------------------------------


def _sample_inputs(model: str) -> dict[str, np.ndarray]:
    """One request's inputs for each corpus model's default signature."""
    from model_corpus import make_example

    if model in ("half_plus_two", "half_plus_three"):
        return {"x": np.array([[1.0], [3.0]], np.float32)}
    if model in KERAS_KEYS:
        return {KERAS_KEYS[model][0]: np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}
    if model == "tf2_examples":
        return {"inputs": np.array([make_example(x=1.0), make_example(x=-3.0)], dtype=object)}
    if model == "tf2_module":
        return {"x": np.arange(12, dtype=np.float32).reshape(2, 3, 2)}
    if model == "multi_io":
        return multi_io_example_inputs()
    if model == "no_batch":
        return {"matrix": np.array([[2.0, 1.0], [1.0, 3.0]], np.float32)}
    examples = [make_example(**{"image/encoded": image}) for image in encode_test_jpegs(2, size=40)]
    return {"inputs": np.array(examples, dtype=object)}


def _to_json(array: np.ndarray):
    from rest_client import b64

    if array.dtype == object:
        return np.vectorize(b64, otypes=[object])(array).tolist()
    return array.tolist()


@pytest.fixture(scope="module")
def triton_http(server: ServerProcess):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.metrics_port}")
    yield client
    client.close()


def triton_http_infer(client, model: str, inputs: dict[str, np.ndarray]):
    """KServe v2 over HTTP with binary tensors both ways, as tritonclient.http sends with binary_data=True."""
    import tritonclient.http as triton_http
    from tritonclient.utils import np_to_triton_dtype

    infer_inputs = []
    for name, array in inputs.items():
        infer_input = triton_http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        infer_input.set_data_from_numpy(array, binary_data=True)
        infer_inputs.append(infer_input)
    return client.infer(model, infer_inputs)


@pytest.mark.parametrize("protocol", ["grpc", "rest", "kserve", "kserve-http"])
@pytest.mark.parametrize("model", sorted(BUILDERS))
def test_every_model_answers_as_in_process_on_every_protocol(server, stub, triton, triton_http, corpus, model,
                                                             protocol):
    inputs = _sample_inputs(model)
    expected = run_in_process(corpus[model], **inputs)
    if protocol == "grpc":
        assert_same(outputs_of(predict(stub, model, inputs)), expected)
        return
    if protocol in ("kserve", "kserve-http"):
        result = (triton_infer(triton, model, inputs) if protocol == "kserve"
                  else triton_http_infer(triton_http, model, inputs))
        actual = {name: result.as_numpy(name) for name in expected}
        for name, value in expected.items():
            if value.dtype == object:
                assert actual[name].reshape(value.shape).tolist() == value.tolist(), name
            else:
                assert actual[name].dtype == value.dtype, name
                np.testing.assert_allclose(actual[name].astype(np.float64), value.astype(np.float64), rtol=1e-6)
        return
    status, body = rest(server, model, "predict", {"inputs": {name: _to_json(value) for name, value in inputs.items()}})
    assert status == 200, body
    outputs = body["outputs"] if len(expected) > 1 else {next(iter(expected)): body["outputs"]}
    for name, value in expected.items():
        if value.dtype == object:
            texts = np.vectorize(lambda item: item.decode(), otypes=[object])(value)
            assert outputs[name] == texts.tolist(), name
        else:
            np.testing.assert_allclose(np.array(outputs[name], np.float64), value.astype(np.float64), rtol=1e-6,
                                       err_msg=name)
