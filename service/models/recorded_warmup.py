"""Warm-up requests from `assets.extra/tf_serving_warmup_requests`, as TF Serving honours them.

The file is a TFRecord of `PredictionLog` protos (the format TF Serving documents). For a model with the
image contract each record is turned into the images (or pixels) it carries, which the model manager runs
through the image path; any other model runs its recorded Predict requests' signatures directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import prediction_log_pb2

from service.errors import InvalidInputError
from service.tensors import image_inputs
from service.runtime.model_runtime import ModelLoadError, ModelRuntime, SignatureInputError, read_tfrecords
from service.runtime.signatures import DEFAULT_SIGNATURE, IMAGE_INPUT_BY_SIGNATURE, image_items
from service.tensors.tensor_proto import to_array

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


@dataclass(frozen=True)
class WarmupRequest:
    """One recorded request: encoded images to preprocess, or pixels `[N, H, W, 3]` ready to run."""

    images: list[bytes] | None = None
    pixels: np.ndarray | None = None


def read_warmup_requests(version_dir: Path) -> list[WarmupRequest]:
    """The requests recorded for `version_dir`, [] without a warm-up file; ModelLoadError if it is bad."""
    path = version_dir / WARMUP_FILE
    if not path.is_file():
        return []
    requests = []
    for index, record in enumerate(read_tfrecords(path, MAX_WARMUP_RECORDS)):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
            requests.append(_request_of(log))
        except (DecodeError, InvalidInputError) as error:
            raise ModelLoadError(f"{path}: record {index}: {error or 'not a PredictionLog'}") from None
    return requests


def _request_of(log: prediction_log_pb2.PredictionLog) -> WarmupRequest:
    kind = log.WhichOneof("log_type")
    if kind == "classify_log":
        return WarmupRequest(images=image_inputs.image_bytes_from_input(log.classify_log.request.input))
    if kind != "predict_log":
        raise InvalidInputError(f"{kind or 'an empty log'} cannot warm up an image classifier; record predict_log or classify_log")
    request = log.predict_log.request
    signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
    input_key = IMAGE_INPUT_BY_SIGNATURE.get(signature)  # the image path's signatures, as the data plane routes them
    if input_key is None or input_key not in request.inputs:
        raise InvalidInputError(f"predict_log needs signature {sorted(IMAGE_INPUT_BY_SIGNATURE)} and its input")
    items = image_items(signature, to_array(request.inputs[input_key], input_key), None)
    if isinstance(items, np.ndarray):
        return WarmupRequest(pixels=items)
    return WarmupRequest(images=items)


def run_recorded_predictions(runtime: ModelRuntime, version_dir: Path) -> int:
    """Run each recorded Predict request on its signature, so the first client does not pay for building
    its graph; returns how many ran. Records of other kinds are skipped; a request the model refuses makes
    the version unservable (TF Serving refuses it too)."""
    path = version_dir / WARMUP_FILE
    if not path.is_file():
        return 0
    ran = 0
    for index, record in enumerate(read_tfrecords(path, MAX_WARMUP_RECORDS)):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
        except DecodeError:
            raise ModelLoadError(f"{path}: record {index}: not a PredictionLog") from None
        if log.WhichOneof("log_type") != "predict_log":
            continue
        request = log.predict_log.request
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature not in runtime.signatures:
            raise ModelLoadError(f"{path}: record {index}: the model has no signature '{signature}'")
        try:
            inputs = {key: to_array(tensor, key) for key, tensor in request.inputs.items()}
            runtime.run_signature(signature, inputs)
        except (InvalidInputError, SignatureInputError) as error:
            raise ModelLoadError(f"{path}: record {index}: {error}") from None
        ran += 1
    return ran
