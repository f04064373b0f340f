"""The model runtime: the only serve-time code that calls TensorFlow.

It loads one SavedModel version, any SavedModel a TF Serving user has, and offers blocking calls the server
runs off the event loop: `run_signature` (named numpy inputs → named numpy outputs, for any signature) and,
for models with the image contract (see docs/architecture.md), the image fast path: `preprocess` (one
image's bytes → pixels, in the decode pool) and `run_batch` (stacked pixels → top-k classes and scores, in a
batch thread). A batch item may also be an `EncodedImage` that the model decodes in the same graph call as
the network (the data plane's idle fast path).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter is not operator news
import tensorflow as tf  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2  # noqa: E402
from tensorflow.python.saved_model.loader_impl import SavedModelLoader  # noqa: E402

from service.runtime.errors import BatchInputError  # noqa: E402
from service.runtime.signatures import (  # noqa: E402
    ENCODED_IMAGES_SIGNATURE,
    PIXELS_SIGNATURE,
    PREPROCESS_SIGNATURE,
    REQUIRED_SIGNATURES,
)
from service.tensors.spec import SignatureSpec, UnsupportedSignatureError, signature_spec  # noqa: E402

_log = logging.getLogger(__name__)



class ModelLoadError(Exception):
    """The version directory is not a SavedModel this server can serve."""


class BatchExecutionError(RuntimeError):
    """The model's graph failed while running a batch; the message is TF's first line, not its stack."""


class ImageDecodeError(ValueError):
    """The bytes are not an image the model's own preprocessing can decode."""


class SignatureInputError(BatchInputError):
    """TensorFlow refused a request's inputs (INVALID_ARGUMENT: a shape the graph cannot take, an
    unparsable tf.Example, ...): the client's fault, reported with TF's own first line."""


@dataclass(slots=True)
class Prediction:
    """One image's top-k answer; `scores` is a view into the batch's result array.

    Not frozen: a frozen dataclass's __init__ goes through object.__setattr__, and one is built per image.
    """

    classes: Sequence[bytes]
    scores: np.ndarray


@dataclass(slots=True)
class EncodedImage:
    """An image handed to `run_batch` still encoded: the model decodes it in the batch's own graph call.

    This saves a separate `preprocess` call, its thread hop and the pixel copies, which is worth about
    a millisecond to a lone request (see service/dataplane/image_path.py).
    """

    data: bytes


_threading_configured = False
# What TF1 graph Sessions are created with: the same thread pools as the eager runtime, and ops pinned to a
# device this machine lacks (a graph exported on a GPU machine) placed where they can run, as TF Serving does.
_session_config = config_pb2.ConfigProto(allow_soft_placement=True)


def configure_tensorflow(intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
    """Set TF's thread pools once, before the first op runs (TF refuses changes afterwards)."""
    global _threading_configured
    if _threading_configured:
        return
    if intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        _session_config.intra_op_parallelism_threads = intra_op_threads
    if inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        _session_config.inter_op_parallelism_threads = inter_op_threads
    _threading_configured = True
    _log_devices()


def tensorflow_threads() -> tuple[int, int]:
    """The intra- and inter-op thread counts this process set (0: TensorFlow's default), for a child to match."""
    return _session_config.intra_op_parallelism_threads, _session_config.inter_op_parallelism_threads


def runs_on_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def _log_devices() -> None:
    """One line on where models run, so a GPU image started without a GPU says so (and runs on the CPU)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        _log.info("models run on %d GPU(s): %s", len(gpus), ", ".join(gpu.name for gpu in gpus))
    elif tf.test.is_built_with_cuda():
        _log.info("models run on the CPU: this TensorFlow supports GPUs, but none is visible")
    else:
        _log.info("models run on the CPU")


DEFAULT_TAGS = ("serve",)


def read_meta_graph(version_dir: Path, tags: Sequence[str] = DEFAULT_TAGS) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraph tagged `tags`, as stored in saved_model.pb (its SignatureDefs answer GetModelMetadata)."""
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    except DecodeError as error:
        raise ModelLoadError(f"{version_dir}: saved_model.pb is not a SavedModel: {error}") from None
    if not saved_model.meta_graphs:
        raise ModelLoadError(f"{version_dir}: saved_model.pb holds no MetaGraph")
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    found = [sorted(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    raise ModelLoadError(
        f"{version_dir}: no MetaGraph tagged {sorted(tags)} (--saved_model_tags); the SavedModel has {found}"
    )


class ModelRuntime:
    """A loaded model version: run any of its signatures; with the image contract, also decode one image and
    run one batch of pixels."""

    def __init__(self, version_dir: Path, tags: Sequence[str] = DEFAULT_TAGS) -> None:
        self.version_dir = version_dir
        if not (version_dir / "saved_model.pb").is_file():
            raise ModelLoadError(f"{version_dir}: no saved_model.pb")
        meta_graph = read_meta_graph(version_dir, tags)
        self.signature_defs = dict(meta_graph.signature_def)
        # A TF1 graph (no object graph: written by SavedModelBuilder or an Estimator) runs in a Session, as TF
        # Serving runs every model: its tensors are fed whatever their static shapes say, e.g.
        # `{"instances": [1.0, 2.0]}` into half_plus_two's x of shape [-1, 1].
        self.graph_session = not meta_graph.object_graph_def.nodes
        self.signatures: dict[str, SignatureSpec] = {}
        self.unusable_signatures: dict[str, str] = {}  # name -> why requests cannot call it
        for name, signature_def in self.signature_defs.items():
            try:
                self.signatures[name] = signature_spec(name, signature_def, shapes_enforced=not self.graph_session)
            except UnsupportedSignatureError as error:
                self.unusable_signatures[name] = str(error)
        self._functions: dict[str, Any] = {}
        try:
            if self.graph_session:
                self._graph = _GraphSession(version_dir, tags, {name: self.signature_defs[name] for name in self.signatures})
                restored = self._graph.signatures
            else:
                self._saved_model = tf.saved_model.load(str(version_dir), tags=list(tags))
                self._functions = dict(self._saved_model.signatures)
                restored = self._functions
        except Exception as error:  # TF raises a zoo of types for corrupt models
            raise ModelLoadError(f"{version_dir}: cannot load SavedModel: {_first_line(str(error))}") from error
        for name in list(self.signatures):
            if name not in restored:  # in the MetaGraph, but not callable (see _GraphSession for why)
                del self.signatures[name]
                self.unusable_signatures[name] = (
                    self._graph.unusable.get(name, "") if self.graph_session else ""
                ) or f"signature '{name}' could not be restored as a function"
        # The image fast path calls the model's functions directly; a TF1 graph serves its signatures as tensors.
        self.image_contract = not self.graph_session and all(name in self.signatures for name in REQUIRED_SIGNATURES)
        self.input_shape: tuple[int, int, int] | None = None
        if self.image_contract:
            self._preprocess = self._functions[PREPROCESS_SIGNATURE]
            self._classify_pixels = self._functions[PIXELS_SIGNATURE]
            self._predict_images = self._functions.get(ENCODED_IMAGES_SIGNATURE)
            pixels_spec = self._classify_pixels.structured_input_signature[1]["pixels"]
            self.input_shape = tuple(int(d) for d in pixels_spec.shape[1:])  # type: ignore[assignment]
        self.metadata: dict[str, Any] = self._read_metadata()

    def run_signature(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one signature on named inputs already checked against its spec; all its outputs, as numpy.

        Raises SignatureInputError when TensorFlow refuses the inputs, BatchExecutionError for other faults.
        """
        try:
            if self.graph_session:
                return self._graph.run(name, inputs)
            outputs = self._functions[name](**{key: tf.constant(value) for key, value in inputs.items()})
        except tf.errors.InvalidArgumentError as error:
            raise SignatureInputError(_op_error_summary(error.message)) from None
        except tf.errors.OpError as error:
            rows = min((len(value) for value in inputs.values() if value.ndim), default=1)
            raise self._batch_failed(error, rows) from None
        except (TypeError, ValueError) as error:  # the arguments do not bind to the function's input specs
            raise SignatureInputError(_first_line(str(error))) from None
        return {key: value.numpy() for key, value in outputs.items()}

    def _read_metadata(self) -> dict[str, Any]:
        """assets/export_metadata.json as a dict ({} when absent, unreadable or not a JSON object)."""
        path = self.version_dir / "assets" / "export_metadata.json"
        if not path.is_file():
            return {}
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            _log.warning("%s: unreadable export metadata: %s", path, error)
            return {}
        if not isinstance(metadata, dict):
            _log.warning("%s: export metadata is not a JSON object; ignored", path)
            return {}
        return metadata

    def preprocess(self, image: bytes) -> np.ndarray:
        """Decode, resize and scale one image with the model's own exported preprocessing."""
        try:
            pixels = self._preprocess(image=tf.constant(image))["pixels"]
        except tf.errors.OpError as error:
            raise ImageDecodeError(_op_error_summary(error.message)) from None
        return pixels.numpy()

    def run_batch(
        self, items: Sequence[np.ndarray | EncodedImage], padded_size: int
    ) -> list[Prediction | ImageDecodeError]:
        """Run the network once on the batch, padded with zero images up to `padded_size`.

        Items are pixels, or `EncodedImage`s. A batch of encoded images only (unpadded) runs through the
        model's `predict_images`, decode included; if that graph call rejects an image, or the batch is
        mixed, the encoded items are decoded one by one, so an undecodable image fails its own item only.
        """
        count = len(items)
        if (self._predict_images is not None and padded_size <= count
                and all(isinstance(item, EncodedImage) for item in items)):
            try:
                encoded = tf.constant([item.data for item in items])  # type: ignore[union-attr]
                outputs = self._predict_images(images=encoded)
            except tf.errors.InvalidArgumentError:
                pass  # most likely an undecodable image: find it below, item by item
            except tf.errors.OpError as error:
                raise self._batch_failed(error, count) from None
            else:
                return _predictions(outputs, count)
        decoded: list[np.ndarray | ImageDecodeError] = [
            self._decoded(item) if isinstance(item, EncodedImage) else item for item in items
        ]
        pixels = [item for item in decoded if isinstance(item, np.ndarray)]
        if len(pixels) < count:  # some failed to decode: run the rest, put the errors in their places
            answers = iter(self._run_pixels(pixels, padded_size) if pixels else ())
            return [next(answers) if isinstance(item, np.ndarray) else item for item in decoded]
        return self._run_pixels(pixels, padded_size)  # type: ignore[return-value]

    def _decoded(self, item: EncodedImage) -> np.ndarray | ImageDecodeError:
        try:
            return self.preprocess(item.data)
        except ImageDecodeError as error:
            return error

    def _run_pixels(self, pixels: Sequence[np.ndarray], padded_size: int) -> list[Prediction]:
        count = len(pixels)
        if padded_size <= count:
            batch = np.stack(pixels).astype(np.float32, copy=False)  # one copy, no zero-fill
        else:
            batch = np.zeros((padded_size, *self.input_shape), dtype=np.float32)
            for row, image in enumerate(pixels):
                batch[row] = image
        try:
            outputs = self._classify_pixels(pixels=tf.constant(batch))
        except tf.errors.OpError as error:
            raise self._batch_failed(error, count) from None
        return _predictions(outputs, count)

    def _batch_failed(self, error: tf.errors.OpError, count: int) -> BatchExecutionError:
        summary = _op_error_summary(error.message)
        _log.error("model %s failed on a batch of %d: %s", self.version_dir, count, summary)
        return BatchExecutionError(f"{type(error).__name__}: {summary}")

    @staticmethod
    def sample_jpeg() -> bytes:
        """A small valid JPEG, for warm-up requests."""
        return tf.io.encode_jpeg(tf.zeros((8, 8, 3), dtype=tf.uint8)).numpy()

    def warm_up(self, batch_sizes: Sequence[int]) -> None:
        """Run the decoder and each batch size once so no client request pays for first-call setup.

        The first call of a loaded signature builds and optimises its graph (tens of ms even for a tiny
        model), so preprocessing is warmed up too, with a small JPEG and PNG. Other models are warmed up by
        the requests recorded with them (assets.extra/tf_serving_warmup_requests), as TF Serving does.
        """
        if not self.image_contract:
            return
        for encoded in (self.sample_jpeg(), tf.io.encode_png(tf.zeros((8, 8, 3), dtype=tf.uint8)).numpy()):
            self.preprocess(encoded)
        blank = np.zeros(self.input_shape, dtype=np.float32)
        for size in sorted(set(batch_sizes)):
            self.run_batch([blank] * size, size)
        if self._predict_images is not None:
            self.run_batch([EncodedImage(self.sample_jpeg())], 1)  # the idle fast path's graph


class _GraphSession:
    """A TF1 graph SavedModel run as TF Serving runs it: one Session over the MetaGraph as stored (variables
    restored, init ops run, asset paths fed), each signature a callable fed and fetched by tensor name.

    `tf.saved_model.load` would instead re-import the graph into functions, re-running shape inference (it
    refuses graphs TF Serving serves, such as a serialized-example placeholder declared as a scalar and fed a
    vector) and checking feeds against static shapes a Session never enforced.
    """

    def __init__(self, version_dir: Path, tags: Sequence[str], signature_defs: dict[str, Any]) -> None:
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph, config=_session_config)
        with graph.as_default():
            SavedModelLoader(str(version_dir)).load(self._session, list(tags))
        self.signatures: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any]] = {}
        self.unusable: dict[str, str] = {}
        for name, signature_def in signature_defs.items():
            inputs, outputs = tuple(signature_def.inputs), tuple(signature_def.outputs)
            tensors = [*signature_def.inputs.values(), *signature_def.outputs.values()]
            if not all(info.name for info in tensors):
                self.unusable[name] = f"signature '{name}' has sparse or composite tensors, which requests cannot carry"
                continue
            options = config_pb2.CallableOptions(
                feed=[signature_def.inputs[key].name for key in inputs],
                fetch=[signature_def.outputs[key].name for key in outputs],
            )
            try:
                # Session.make_callable would check feeds against static shapes in Python; TF Serving's C++
                # Session::Run does not, so neither does the callable made from options.
                self.signatures[name] = (inputs, outputs, self._session._make_callable_from_options(options))
            except (tf.errors.OpError, ValueError) as error:
                self.unusable[name] = f"signature '{name}' names tensors the graph cannot run: {_first_line(str(error))}"

    def run(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        input_keys, output_keys, run = self.signatures[name]
        return dict(zip(output_keys, run(*(inputs[key] for key in input_keys))))


def _predictions(outputs: dict[str, tf.Tensor], count: int) -> list[Prediction]:
    classes = outputs["classes"].numpy().tolist()  # lists of bytes: cheaper than numpy scalars
    scores = outputs["scores"].numpy()
    return [Prediction(classes[row], scores[row]) for row in range(count)]


def read_tfrecords(path: Path, limit: int) -> list[bytes]:
    """The records of a TFRecord file (e.g. assets.extra/tf_serving_warmup_requests), at most `limit`."""
    try:
        return [record.numpy() for record in tf.data.TFRecordDataset(str(path)).take(limit)]
    except tf.errors.OpError as error:
        raise ModelLoadError(f"{path}: not a readable TFRecord file: {_first_line(error.message)}") from None


_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def _first_line(message: str) -> str:
    """TF's error text without its graph-function prefix: `{{function_node __inference_...}} jpeg::...`."""
    text = _FUNCTION_NODE.sub("", message).strip()
    return text.splitlines()[0] if text else "undecodable input"


_GRAPH_ERROR_NOISE = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[{{")


def _op_error_summary(message: str) -> str:
    """The line of a TF runtime error that says what went wrong, without node names and stack (the stack's
    lines, `  File "...", line N`, and its code lines are indented; the error's own line is not)."""
    for raw in _FUNCTION_NODE.sub("", message).splitlines():
        line = raw.strip()
        if (line and not raw[:1].isspace() and not line.startswith(_GRAPH_ERROR_NOISE)
                and "defined at" not in line and not line.startswith("File ")):
            return line[:500]
    return "the model's graph raised"
