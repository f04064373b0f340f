"""A corpus of small SavedModels in TF Serving's layout, for testing the server on models it did not export.

Every builder takes `base` (the model's base path) and `version` and writes `<base>/<version>/saved_model.pb`
(plus `variables/`), returning the version directory. The version directory appears atomically: it is written
under a hidden, non-numeric sibling name and renamed into place, so a server polling `base` never sees a
half-written version. Models are tiny and fully deterministic (fixed values or seeded NumPy weights).

| builder                           | signature (method)            | inputs -> outputs                               |
|-----------------------------------|-------------------------------|-------------------------------------------------|
| write_half_plus_two_tf1           | serving_default (predict)     | x f32[-1,1] -> y f32[-1,1]                      |
|   (TF1 graph, SavedModelBuilder)  | regress_x_to_y (regress)      | inputs str[-1] (tf.Example "x") -> outputs      |
|                                   | classify_x_to_y (classify)    | inputs str[-1] (tf.Example "x") -> scores       |
| write_tf2_module_unknown_shape    | serving_default (predict)     | x f32 unknown rank -> doubled                   |
|                                   | scaled (predict)              | x f32[-1,3] -> scaled f32[-1,3], total f32[-1]  |
| write_keras_sequential            | serving_default, serve        | KERAS_INPUT_KEY f32[-1,4] -> KERAS_OUTPUT_KEY   |
| write_multi_io                    | serving_default (predict)     | MULTI_IO_INPUTS -> MULTI_IO_OUTPUTS (7 dtypes)  |
|                                   | complex_sig, bf16 (predict)   | x complex64/bfloat16 [-1] -> y, same dtype      |
| write_no_batch_dim                | serving_default (predict)     | matrix f32[2,2] -> determinant f32[], transposed|
| write_tutorial_inception_style    | predict_images (predict)      | images str[-1] JPEG -> classes str[-1,5], scores|
|   (TF1 graph, SavedModelBuilder)  | serving_default (classify)    | inputs str[-1] (tf.Example "image/encoded")     |
| write_half_plus_three_tf1_legacy  | serving_default (predict)     | x f32 -> y (y = 0.5 x + 3)                      |
|   (TF1 graph as TF 1.0 wrote it)  | regress_x_to_y (regress)      | inputs str[] (a scalar placeholder, fed [N])    |
|                                   | classify_x_to_y (classify)    |   -> outputs / scores                           |
| write_tf2_example_module          | serving_default (predict)     | inputs str[-1] tf.Example "x" -> classes, scores|
|   (tf.Module, all method predict) | regress (predict)             | inputs str[-1] -> outputs f32[-1]               |
|                                   | predict_x (predict)           | x f32[-1] -> y f32[-1]                          |
| write_keras_saved_model           | serving_default (predict)     | Keras 3 or tf_keras Sequential through          |
|                                   |                               | tf.saved_model.save (KERAS_SAVED_MODEL_KEYS)    |
| write_tf_keras_export             | serving_default, serve        | tf_keras Sequential through model.export        |

`run_in_process` is the reference: it runs a signature in this process, for tests to compare the server's
answers against: a TF2 SavedModel through `tf.saved_model.load`, a TF1 graph in a `tf.compat.v1.Session` fed
through C++'s Session::Run as TF Serving feeds it (Python's `Session.run` checks feeds against static shapes,
which TF1 graphs such as TF Serving's own test models do not always meet).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"

# Keras 3 `model.export` names the signature input after the Input layer and the output `output_0`.
KERAS_INPUT_KEY = "features"
KERAS_OUTPUT_KEY = "output_0"
KERAS_INPUT_DIM = 4
KERAS_CLASSES = 3

# write_multi_io's serving_default: input key -> (dtype name, shape); output key likewise (-1: batch).
MULTI_IO_INPUTS = {
    "ids": ("int64", [-1]),
    "tokens": ("string", [-1, 2]),
    "flags": ("bool", [-1]),
    "weights": ("float64", [-1, 3]),
    "small": ("int8", [-1]),
    "halfs": ("float16", [-1]),
    "u16": ("uint16", [-1]),
}
MULTI_IO_OUTPUTS = {
    "id_plus_one": ("int64", [-1]),
    "joined": ("string", [-1]),
    "flag_not": ("bool", [-1]),
    "weight_sum": ("float64", [-1]),
    "small_times_two": ("int32", [-1]),
    "half_sq": ("float16", [-1]),
    "u16_plus": ("uint16", [-1]),
}

# Signature keys of write_keras_saved_model (input, output) and write_tf_keras_export, per Keras flavour.
KERAS_SAVED_MODEL_KEYS = {"keras3": ("inputs", "output_0"), "tf_keras": (KERAS_INPUT_KEY, "dense")}
TF_KERAS_EXPORT_KEYS = (KERAS_INPUT_KEY, "output_0")
# write_tf2_example_module's classify signature: a label per column, scores 0.5 x + 2 and 0.5 x + 1.
TF2_EXAMPLE_CLASSES = (b"upper", b"lower")

TUTORIAL_LABELS = [
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead",
    "electric ray", "stingray", "cock", "hen", "ostrich",
]
TUTORIAL_TOP_K = 5


def write_model_config(path: Path, bases: dict[str, Path]) -> Path:
    """A --model_config_file serving each named base path (TF Serving's text format)."""
    entries = "".join(
        f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n' for name, base in bases.items()
    )
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


def _write_atomically(base: Path, version: int, write: Callable[[Path], None]) -> Path:
    """Run `write(path)` on a fresh hidden directory in `base`, then rename it to `base/<version>`."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    final = base / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".writing-{version}-", dir=base))
    try:
        target = staging / "model"  # SavedModelBuilder insists on a directory that does not exist yet
        write(target)
        os.rename(target, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------------------
# 1. TF Serving's saved_model_half_plus_two, TF1 graph style.


def write_half_plus_two_tf1(base: Path, version: int = 1, tags: tuple[str, ...] = ("serve",)) -> Path:
    """y = 0.5 * x + 2 as a TF1 graph with variables, like TF Serving's `saved_model_half_plus_two`.

    As in TF Serving's model, the predict signature's input `x` is not a placeholder but the tensor parsed
    from the tf.Example placeholder; the server must feed it directly.
    """
    import tensorflow as tf

    v1 = tf.compat.v1

    def write(path: Path) -> None:
        with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
            a = v1.Variable(0.5, name="a", dtype=tf.float32)
            b = v1.Variable(2.0, name="b", dtype=tf.float32)
            serialized = v1.placeholder(tf.string, shape=[None], name="tf_example")
            parsed = v1.parse_example(serialized, {"x": v1.FixedLenFeature([1], tf.float32)})
            x = tf.identity(parsed["x"], name="x")  # [-1, 1]
            y = tf.add(tf.multiply(a, x), b, name="y")
            sess.run(v1.global_variables_initializer())

            info = v1.saved_model.utils.build_tensor_info
            predict = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"x": info(x)}, outputs={"y": info(y)}, method_name=PREDICT
            )
            regress = v1.saved_model.regression_signature_def(examples=serialized, predictions=y)
            classify = v1.saved_model.classification_signature_def(examples=serialized, classes=None, scores=y)

            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                sess,
                list(tags),
                signature_def_map={
                    "serving_default": predict,
                    "regress_x_to_y": regress,
                    "classify_x_to_y": classify,
                },
                strip_default_attrs=True,
            )
            builder.save()

    return _write_atomically(base, version, write)


# ---------------------------------------------------------------------------------------------------------
# 2. A TF2 module whose default signature has an unknown-rank input.


def write_tf2_module_unknown_shape(base: Path, version: int = 1) -> Path:
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
        def double(self, x):
            return {"doubled": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def scale(self, x):
            return {"scaled": x * 3.0, "total": tf.reduce_sum(x, axis=1)}

    module = Module()
    signatures = {"serving_default": module.double, "scaled": module.scale}
    return _write_atomically(base, version, lambda path: tf.saved_model.save(module, str(path), signatures))


# ---------------------------------------------------------------------------------------------------------
# 3. Keras 3 Sequential, exported the way Keras users export for serving.


def keras_sequential_weights() -> list[np.ndarray]:
    kernel = (np.arange(KERAS_INPUT_DIM * KERAS_CLASSES, dtype=np.float32).reshape(KERAS_INPUT_DIM, KERAS_CLASSES)
              - 5.5) / 10.0
    bias = np.arange(KERAS_CLASSES, dtype=np.float32) / 10.0
    return [kernel, bias]


def keras_sequential_expected(x: np.ndarray) -> np.ndarray:
    """What the Keras model computes, in NumPy: softmax(x @ kernel + bias)."""
    kernel, bias = keras_sequential_weights()
    logits = np.asarray(x, np.float64) @ kernel + bias
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def write_keras_sequential(base: Path, version: int = 1) -> Path:
    import keras

    model = keras.Sequential(
        [
            keras.Input((KERAS_INPUT_DIM,), name=KERAS_INPUT_KEY),
            keras.layers.Dense(KERAS_CLASSES, activation="softmax", name="dense"),
        ]
    )
    model.set_weights(keras_sequential_weights())

    def write(path: Path) -> None:
        if hasattr(model, "export"):
            model.export(str(path), format="tf_saved_model", verbose=False)
        else:  # pragma: no cover - older Keras
            import tensorflow as tf

            tf.saved_model.save(model, str(path))

    return _write_atomically(base, version, write)


# ---------------------------------------------------------------------------------------------------------
# 4. Many inputs and outputs of many dtypes.


def write_multi_io(base: Path, version: int = 1) -> Path:
    import tensorflow as tf

    def spec(key: str) -> tf.TensorSpec:
        dtype, shape = MULTI_IO_INPUTS[key]
        return tf.TensorSpec([None if d == -1 else d for d in shape], tf.dtypes.as_dtype(dtype), name=key)

    class Module(tf.Module):
        @tf.function(input_signature=[spec(k) for k in MULTI_IO_INPUTS])
        def serve(self, ids, tokens, flags, weights, small, halfs, u16):
            return {
                "id_plus_one": ids + 1,
                "joined": tf.strings.reduce_join(tokens, axis=1, separator=" "),
                "flag_not": tf.logical_not(flags),
                "weight_sum": tf.reduce_sum(weights, axis=1),
                "small_times_two": tf.cast(small, tf.int32) * 2,
                "half_sq": halfs * halfs,
                "u16_plus": u16 + tf.constant(1, tf.uint16),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.complex64, name="x")])
        def complex_sig(self, x):
            return {"y": x * tf.constant(2, tf.complex64)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.bfloat16, name="x")])
        def bf16(self, x):
            return {"y": x * tf.constant(2, tf.bfloat16)}

    module = Module()
    signatures = {"serving_default": module.serve, "complex_sig": module.complex_sig, "bf16": module.bf16}
    return _write_atomically(base, version, lambda path: tf.saved_model.save(module, str(path), signatures))


def multi_io_example_inputs() -> dict[str, np.ndarray]:
    """A two-row batch for write_multi_io's serving_default."""
    return {
        "ids": np.array([1, 2**40], np.int64),
        "tokens": np.array([[b"hello", b"world"], [b"a", b"\xc3\xa9"]], object),
        "flags": np.array([True, False]),
        "weights": np.array([[0.5, 0.25, 0.125], [1.0, 2.0, 3.0]], np.float64),
        "small": np.array([-128, 127], np.int8),
        "halfs": np.array([1.5, -2.0], np.float16),
        "u16": np.array([0, 65534], np.uint16),
    }


# ---------------------------------------------------------------------------------------------------------
# 5. A fixed-shape input with no batch dimension.


def write_no_batch_dim(base: Path, version: int = 1) -> Path:
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 2], tf.float32, name="matrix")])
        def serve(self, matrix):
            return {"determinant": tf.linalg.det(matrix), "transposed": tf.transpose(matrix)}

    module = Module()
    return _write_atomically(
        base, version, lambda path: tf.saved_model.save(module, str(path), {"serving_default": module.serve})
    )


# ---------------------------------------------------------------------------------------------------------
# 6. A stand-in for TF Serving's Inception tutorial export (inception_saved_model.py).


def _tutorial_weights(seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv1/kernel": (rng.standard_normal((3, 3, 3, 8)) * 0.5).astype(np.float32),
        "conv1/bias": np.linspace(-0.1, 0.1, 8, dtype=np.float32),
        "conv2/kernel": (rng.standard_normal((3, 3, 8, 16)) * 0.3).astype(np.float32),
        "conv2/bias": np.linspace(-0.05, 0.05, 16, dtype=np.float32),
        "logits/kernel": (rng.standard_normal((16, len(TUTORIAL_LABELS))) * 2.0).astype(np.float32),
        "logits/bias": np.linspace(-0.5, 0.5, len(TUTORIAL_LABELS), dtype=np.float32),
    }


def write_tutorial_inception_style(base: Path, version: int = 1, size: int = 32) -> Path:
    """Like the tutorial's export: JPEG decoding in the graph, top-5 labels via a lookup table.

    As in inception_saved_model.py, one graph serves both signatures: `serving_default` (classify) feeds
    serialized tf.Examples to a placeholder, and `predict_images` (predict) feeds the JPEG strings straight
    into the tensor parsed from them (`image/encoded`), which is not a placeholder. The label table needs the
    SavedModel's main op (tables_initializer) to run at load time.
    """
    import tensorflow as tf

    v1 = tf.compat.v1

    def preprocess(jpeg):
        image = tf.io.decode_jpeg(jpeg, channels=3)
        image = tf.image.convert_image_dtype(image, tf.float32)  # [0, 1]
        image = tf.image.resize(image[tf.newaxis], [size, size], method="bilinear")[0]
        return tf.clip_by_value(image, 0.0, 1.0)

    def write(path: Path) -> None:
        with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
            serialized = v1.placeholder(tf.string, shape=[None], name="tf_example")
            parsed = v1.parse_example(serialized, {"image/encoded": v1.FixedLenFeature([], tf.string)})
            jpegs = tf.identity(parsed["image/encoded"], name="jpegs")
            images = tf.map_fn(preprocess, jpegs, fn_output_signature=tf.float32)
            images = tf.ensure_shape(images, [None, size, size, 3])

            w = {name: v1.Variable(value, name=name) for name, value in _tutorial_weights().items()}
            net = tf.nn.relu(tf.nn.conv2d(images, w["conv1/kernel"], 1, "SAME") + w["conv1/bias"])
            net = tf.nn.max_pool2d(net, 2, 2, "VALID")
            net = tf.nn.relu(tf.nn.conv2d(net, w["conv2/kernel"], 1, "SAME") + w["conv2/bias"])
            net = tf.reduce_mean(net, axis=[1, 2])
            logits = tf.matmul(net, w["logits/kernel"]) + w["logits/bias"]
            probabilities = tf.nn.softmax(logits)
            scores, indices = tf.nn.top_k(probabilities, TUTORIAL_TOP_K)
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.range(len(TUTORIAL_LABELS), dtype=tf.int64), tf.constant(TUTORIAL_LABELS)
                ),
                default_value="UNKNOWN",
            )
            classes = table.lookup(tf.cast(indices, tf.int64))
            scores = tf.identity(scores, name="scores")
            classes = tf.identity(classes, name="classes")
            sess.run(v1.global_variables_initializer())

            info = v1.saved_model.utils.build_tensor_info
            predict_images = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"images": info(jpegs)},
                outputs={"classes": info(classes), "scores": info(scores)},
                method_name=PREDICT,
            )
            classify = v1.saved_model.classification_signature_def(
                examples=serialized, classes=classes, scores=scores
            )
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                sess,
                [v1.saved_model.tag_constants.SERVING],
                signature_def_map={"predict_images": predict_images, "serving_default": classify},
                main_op=v1.tables_initializer(),
                strip_default_attrs=True,
            )
            builder.save()

    return _write_atomically(base, version, write)


def encode_test_jpegs(count: int = 3, size: int = 40) -> list[bytes]:
    """Deterministic, visibly different JPEGs (gradients of different hues)."""
    import tensorflow as tf

    out = []
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(count):
        image = np.zeros((size, size, 3), np.float32)
        image[..., i % 3] = ramp[None, :]
        image[..., (i + 1) % 3] = ramp[:, None] * (i + 1) / (count + 1)
        image[..., (i + 2) % 3] = 255.0 * ((i * 37) % 5) / 4
        out.append(tf.io.encode_jpeg(tf.constant(image.astype(np.uint8)), quality=95).numpy())
    return out


# ---------------------------------------------------------------------------------------------------------
# 7. TF Serving's saved_model_half_plus_three: a TF1 graph as TF 1.0 wrote it.


def write_half_plus_three_tf1_legacy(base: Path, version: int = 1) -> Path:
    """y = 0.5 * x + 3, written the way TF 1.0 wrote TF Serving's `saved_model_half_plus_three` test model.

    Its serialized-example placeholder has an empty `shape` attribute in a GraphDef of producer version 21, which
    a Session reads as "unknown" (TF's rule for graphs of that age) and which the classify and regress
    signatures declare as a scalar; it is fed a vector of examples. The V1 `ParseExample` op needs a vector, so
    re-importing the graph into functions with the declared shapes (`tf.saved_model.load`) fails ("Shape must
    be rank 1 but is rank 0"), while a Session, as in TF Serving, runs it.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_shape_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    v1 = tf.compat.v1

    def write(path: Path) -> None:
        with tf.Graph().as_default() as graph, v1.Session(graph=graph) as sess:
            a = v1.Variable(0.5, name="a", dtype=tf.float32)
            b = v1.Variable(3.0, name="b", dtype=tf.float32)
            serialized = v1.placeholder(tf.string, shape=None, name="tf_example")
            parsed = tf.raw_ops.ParseExample(  # the V1 op TF 1.0 wrote, which insists on a vector
                serialized=serialized, names=tf.constant([], tf.string), sparse_keys=[], dense_keys=[tf.constant("x")],
                dense_defaults=[tf.constant([], tf.float32)], sparse_types=[], dense_shapes=[[1]],
            )
            x = tf.identity(parsed.dense_values[0], name="x")  # [-1, 1]
            y = tf.add(tf.multiply(a, x), b, name="y")
            sess.run(v1.global_variables_initializer())
            info = v1.saved_model.utils.build_tensor_info
            signatures = {
                "serving_default": v1.saved_model.signature_def_utils.build_signature_def(
                    inputs={"x": info(x)}, outputs={"y": info(y)}, method_name=PREDICT),
                "regress_x_to_y": v1.saved_model.regression_signature_def(examples=serialized, predictions=y),
                "classify_x_to_y": v1.saved_model.classification_signature_def(
                    examples=serialized, classes=None, scores=y),
            }
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=signatures, strip_default_attrs=True)
            builder.save()
        # Age the graph: the placeholder's shape and the signatures' input shapes as TF 1.0 recorded them.
        saved_model = saved_model_pb2.SavedModel()
        pb = path / "saved_model.pb"
        saved_model.ParseFromString(pb.read_bytes())
        meta_graph = saved_model.meta_graphs[0]
        meta_graph.graph_def.versions.producer = 21
        for node in meta_graph.graph_def.node:
            if node.name == "tf_example":
                node.attr["shape"].shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
        for key in ("regress_x_to_y", "classify_x_to_y"):
            meta_graph.signature_def[key].inputs["inputs"].tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
        pb.write_bytes(saved_model.SerializeToString())

    return _write_atomically(base, version, write)


# ---------------------------------------------------------------------------------------------------------
# 8. A TF2 module parsing tf.Examples, saved with tf.saved_model.save (every method name is predict).


def write_tf2_example_module(base: Path, version: int = 1) -> Path:
    """The TF2 way of the tutorial's export: `serving_default` parses tf.Examples and answers a classification
    (`classes` and `scores`, [N, 2]); `regress` answers `outputs` [N]. `tf.saved_model.save` names both
    `tensorflow/serving/predict`, so Classify and Regress must accept them by their inputs and outputs."""
    import tensorflow as tf

    examples = tf.TensorSpec([None], tf.string, name="inputs")

    def parse(serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]

    class Module(tf.Module):
        @tf.function(input_signature=[examples])
        def classify(self, inputs):
            x = parse(inputs)
            scores = tf.stack([0.5 * x + 2.0, 0.5 * x + 1.0], axis=1)
            classes = tf.tile(tf.constant([list(TF2_EXAMPLE_CLASSES)]), [tf.shape(x)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[examples])
        def regress(self, inputs):
            return {"outputs": 0.5 * parse(inputs) + 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict_x(self, x):
            return {"y": 0.5 * x + 2.0}

    module = Module()
    signatures = {"serving_default": module.classify, "regress": module.regress, "predict_x": module.predict_x}
    return _write_atomically(base, version, lambda path: tf.saved_model.save(module, str(path), signatures))


# ---------------------------------------------------------------------------------------------------------
# 9. Keras models saved the other ways users save them.


def _keras_sequential(flavour: str):
    """The Sequential of write_keras_sequential, built with Keras 3 or with tf_keras (Keras 2)."""
    if flavour == "tf_keras":
        import tf_keras as keras_api
    else:
        import keras as keras_api

    model = keras_api.Sequential(
        [
            keras_api.Input((KERAS_INPUT_DIM,), name=KERAS_INPUT_KEY),
            keras_api.layers.Dense(KERAS_CLASSES, activation="softmax", name="dense"),
        ]
    )
    model.set_weights(keras_sequential_weights())
    return model


def write_keras_saved_model(base: Path, version: int = 1, flavour: str = "keras3") -> Path:
    """A Keras Sequential saved with `tf.saved_model.save(model, path)` (signature keys: KERAS_SAVED_MODEL_KEYS)."""
    import tensorflow as tf

    model = _keras_sequential(flavour)
    return _write_atomically(base, version, lambda path: tf.saved_model.save(model, str(path)))


def write_tf_keras_export(base: Path, version: int = 1) -> Path:
    """A tf_keras (Keras 2) Sequential saved with `model.export(path)` (signature keys: TF_KERAS_EXPORT_KEYS)."""
    model = _keras_sequential("tf_keras")
    return _write_atomically(base, version, lambda path: model.export(str(path)))


# ---------------------------------------------------------------------------------------------------------
# Reading and running what was written.


def make_example(**features: Any) -> bytes:
    """A serialized tf.Example: floats/ints become float_list/int64_list, bytes/str become bytes_list."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name, value in features.items():
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        feature = example.features.feature[name]
        if all(isinstance(v, (bytes, str)) for v in values):
            feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            feature.int64_list.value.extend(int(v) for v in values)
        else:
            feature.float_list.value.extend(float(v) for v in values)
    return example.SerializeToString()


def read_signature_defs(version_dir: Path, tag: str = "serve") -> dict:
    """signature key -> SignatureDef proto, from the meta graph tagged `tag` in saved_model.pb.

    TF2 `tf.saved_model.save` also stores `__saved_model_init_op` here (a NoOp output, no method name);
    it is not a signature a client can call.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise KeyError(f"no meta graph tagged {tag!r} in {version_dir}")


def describe_signature(signature_def) -> dict:
    """{"method": ..., "inputs": {key: (dtype name, shape)}, "outputs": {...}}; shape None = unknown rank."""
    from tensorflow.python.framework import dtypes

    def tensors(infos) -> dict:
        out = {}
        for key, info in infos.items():
            shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
            out[key] = (dtypes.as_dtype(info.dtype).name if info.dtype else "invalid", shape)
        return out

    return {
        "method": signature_def.method_name,
        "inputs": tensors(signature_def.inputs),
        "outputs": tensors(signature_def.outputs),
    }


_LOADED: dict[tuple[str, int], Any] = {}


def load_in_process(version_dir: Path):
    """tf.saved_model.load, cached per directory and saved_model.pb modification time."""
    import tensorflow as tf

    pb = Path(version_dir).resolve() / "saved_model.pb"
    key = (str(pb), pb.stat().st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = tf.saved_model.load(str(pb.parent))
    return _LOADED[key]


def _is_tf1_graph(version_dir: Path) -> bool:
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    return not saved_model.meta_graphs[0].object_graph_def.nodes


def _run_tf1_in_session(version_dir: Path, signature: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """A TF1 graph's signature run as TF Serving runs it: a Session over the stored MetaGraph, fed and fetched by
    tensor name through Session::Run (a callable made from CallableOptions, which checks no static shapes)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    pb = Path(version_dir).resolve() / "saved_model.pb"
    key = ("session", str(pb), pb.stat().st_mtime_ns)
    if key not in _LOADED:
        session = tf.compat.v1.Session(graph=tf.Graph())
        with session.graph.as_default():
            _LOADED[key] = (session, tf.compat.v1.saved_model.loader.load(session, ["serve"], str(pb.parent)))
    session, meta_graph = _LOADED[key]
    signature_def = meta_graph.signature_def[signature]
    unknown = set(inputs) - set(signature_def.inputs)
    if unknown:
        raise KeyError(f"{signature} has no inputs {sorted(unknown)}; it takes {sorted(signature_def.inputs)}")
    names, outputs = sorted(inputs), list(signature_def.outputs)
    run = session._make_callable_from_options(config_pb2.CallableOptions(
        feed=[signature_def.inputs[name].name for name in names],
        fetch=[signature_def.outputs[name].name for name in outputs],
    ))
    feeds = [
        np.asarray(inputs[name], dtype=tf.dtypes.as_dtype(signature_def.inputs[name].dtype).as_numpy_dtype)
        for name in names
    ]
    return dict(zip(outputs, run(*feeds)))


def run_in_process(version_dir: Path, signature: str = "serving_default", **inputs: Any) -> dict[str, np.ndarray]:
    """Run one signature on `inputs` (NumPy arrays, lists, or bytes) with TensorFlow in this process."""
    import tensorflow as tf

    if _is_tf1_graph(version_dir):
        return _run_tf1_in_session(version_dir, signature, inputs)
    function = load_in_process(version_dir).signatures[signature]
    specs = function.structured_input_signature[1]
    unknown = set(inputs) - set(specs)
    if unknown:
        raise KeyError(f"{signature} has no inputs {sorted(unknown)}; it takes {sorted(specs)}")
    feeds = {
        key: value if isinstance(value, tf.Tensor) else tf.constant(value, dtype=specs[key].dtype)
        for key, value in inputs.items()
    }
    return {key: value.numpy() for key, value in function(**feeds).items()}
