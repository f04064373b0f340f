"""Property tests for the image path's request decoding (TensorProto to array, then the images or pixels an
image signature's input carries: service/runtime/signatures.py image_items, and the image header check):
whatever the tensors or bytes, decoding returns values consistent with the declared shape or raises an
error the server maps to INVALID_ARGUMENT; nothing else escapes. A short run of the fuzz target is
included here; scripts/fuzz_request_decoding.py runs it for 100,000+ inputs."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from tensorflow.core.example import example_pb2, feature_pb2  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

from request_fuzzing import ACCEPTABLE, decode_request  # noqa: E402
from service.errors import InvalidInputError  # noqa: E402
from service.runtime.signatures import ENCODED_IMAGES_SIGNATURE, PIXELS_SIGNATURE, image_items  # noqa: E402
from service.tensors import image_inputs  # noqa: E402
from service.tensors.tensor_proto import to_array  # noqa: E402

DTYPES = [types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_HALF, 0, 9999]
dims = st.lists(st.integers(-3, 6) | st.sampled_from([2**31, 2**62]), max_size=4)


@st.composite
def tensors(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(
        dtype=draw(st.sampled_from(DTYPES)),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[{"size": d} for d in draw(dims)], unknown_rank=draw(st.booleans())
        ),
    )
    tensor.string_val.extend(draw(st.lists(st.binary(max_size=40), max_size=6)))
    tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=6)))
    if draw(st.booleans()):
        tensor.tensor_content = draw(st.binary(max_size=64))
    return tensor


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors())
def test_images_match_their_declared_shape_or_are_refused(tensor):
    try:
        values = image_items(ENCODED_IMAGES_SIGNATURE, to_array(tensor, "images"), None)
    except InvalidInputError as error:
        assert "'images'" in str(error)
        return
    assert tensor.dtype == types_pb2.DT_STRING
    shape = [d.size for d in tensor.tensor_shape.dim]
    assert shape in ([len(values)], [len(values), 1])
    assert all(isinstance(value, bytes) for value in values)
    if values and len(tensor.string_val) >= len(values):
        assert values == list(tensor.string_val)[: len(values)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tensors())
def test_pixels_match_their_declared_shape_or_are_refused(tensor):
    try:
        array = image_items(PIXELS_SIGNATURE, to_array(tensor, "pixels"), None)
    except InvalidInputError as error:
        assert "'pixels'" in str(error)
        return
    shape = [d.size for d in tensor.tensor_shape.dim]
    assert array.dtype == np.float32 and list(array.shape) == shape and len(shape) == 4
    assert all(d >= 0 for d in shape)


@st.composite
def serialized_examples(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=60))
    feature = draw(st.sampled_from(["bytes", "int64", "float", "none"]))
    example = example_pb2.Example()
    key = draw(st.sampled_from(["image/encoded", "image/other"]))
    if feature == "bytes":
        example.features.feature[key].bytes_list.value.extend(draw(st.lists(st.binary(max_size=20), max_size=3)))
    elif feature == "int64":
        example.features.feature[key].int64_list.value.extend(draw(st.lists(st.integers(0, 9), max_size=3)))
    elif feature == "float":
        example.features.feature[key].float_list.value.extend([1.0])
    return example.SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(serialized_examples(), max_size=4))
def test_examples_yield_one_image_each_or_name_the_bad_one(serialized):
    try:
        images = image_inputs.image_bytes_from_serialized_examples(serialized, "inputs")
    except InvalidInputError as error:
        assert "inputs[" in str(error)
        return
    assert len(images) == len(serialized)
    for data, image in zip(serialized, images):
        example = example_pb2.Example.FromString(data)
        assert [image] == list(example.features.feature["image/encoded"].bytes_list.value)


def seed_requests() -> list[bytes]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["images"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": 2}]),
        string_val=[b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"],
    ))
    example = example_pb2.Example(features=feature_pb2.Features(feature={
        "image/encoded": feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[b"GIF89a"]))}))
    examples = predict_pb2.PredictRequest()
    examples.inputs["inputs"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": 1}]),
        string_val=[example.SerializeToString()],
    ))
    return [request.SerializeToString(), examples.SerializeToString()]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(seed_requests()), st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=4)), max_size=4))
def test_short_fuzz_of_request_bytes_never_crashes(seed, mutations):
    """Mutated valid requests: decoding ends in a result or an error the server maps to a status."""
    data = bytearray(seed)
    for position, insert in mutations:
        position %= len(data) + 1
        data[position : position + len(insert)] = insert
    assert decode_request(bytes(data))


def test_acceptable_errors_are_the_ones_mapped_to_invalid_argument():
    from service.errors import ServingError

    assert InvalidInputError in ACCEPTABLE and issubclass(InvalidInputError, ServingError)
