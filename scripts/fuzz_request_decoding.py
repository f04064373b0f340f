"""Fuzz request decoding for N inputs and report inputs tried and crashes (not part of `make test`).

    .venv/bin/python scripts/fuzz_request_decoding.py --inputs 100000

Two generators feed tests/request_fuzzing.py's target (what the server does with a request's bytes before
the model runs): byte-level mutations (overwrite, insert, delete, splice) of valid serialized Predict /
Classify requests, and random structured requests (random dtypes, shapes, values, tf.Examples). A crash is
any exception other than those the server maps to INVALID_ARGUMENT; each is printed with its input.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tensorflow.core.example import example_pb2  # noqa: E402
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import classification_pb2, predict_pb2  # noqa: E402

from hostile_inputs import BOMBS, UNDECODABLE_IMAGES, VALID_ODD_IMAGES  # noqa: E402
from request_fuzzing import decode_request  # noqa: E402

IMAGES = [*VALID_ODD_IMAGES.values(), *UNDECODABLE_IMAGES.values(), *BOMBS.values()]
IMAGES = [image[:4096] for image in IMAGES]  # headers matter here, not pixels; keeps inputs small


def structured(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        request = classification_pb2.ClassificationRequest()
        examples = (request.input.example_list_with_context.examples if rng.random() < 0.3
                    else request.input.example_list.examples)
        for _ in range(rng.randint(0, 3)):
            example = examples.add()
            if rng.random() < 0.8:
                key = rng.choice(["image/encoded", "image/encoded", "label"])
                example.features.feature[key].bytes_list.value.extend(
                    rng.choice(IMAGES) for _ in range(rng.randint(0, 2)))
        return request.SerializeToString()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = rng.choice(["m", "", "x" * 300])
    key = rng.choice(["images", "inputs", "pixels", "other"])
    tensor: tensor_pb2.TensorProto = request.inputs[key]
    tensor.dtype = rng.choice([types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT32, 0, 12345])
    for _ in range(rng.randint(0, 4)):
        tensor.tensor_shape.dim.add(size=rng.choice([-1, 0, 1, 2, 3, 32, 2**40, 2**62]))
    tensor.tensor_shape.unknown_rank = rng.random() < 0.05
    if key == "inputs":
        example = example_pb2.Example()
        example.features.feature["image/encoded"].bytes_list.value.append(rng.choice(IMAGES))
        tensor.string_val.extend([example.SerializeToString()] * rng.randint(0, 2))
    tensor.string_val.extend(rng.choice(IMAGES) for _ in range(rng.randint(0, 3)))
    tensor.float_val.extend(rng.random() for _ in range(rng.randint(0, 6)))
    if rng.random() < 0.3:
        tensor.tensor_content = rng.randbytes(rng.choice([0, 1, 3, 4, 12, 64]))
    return request.SerializeToString()


def mutated(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 6)):
        position = rng.randint(0, len(data))
        action = rng.random()
        if action < 0.4:
            data[position : position + 1] = bytes([rng.randrange(256)])
        elif action < 0.6:
            data[position:position] = rng.randbytes(rng.randint(1, 8))
        elif action < 0.8:
            del data[position : position + rng.randint(1, 16)]
        else:
            other = rng.choice(seeds)
            start = rng.randint(0, len(other))
            data[position:] = other[start:]
    return bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seeds = [structured(rng) for _ in range(200)]
    outcomes: dict[str, int] = {}
    crashes = 0
    started = time.monotonic()
    for number in range(args.inputs):
        data = mutated(rng, seeds) if number % 2 else structured(rng)
        try:
            outcome = decode_request(data)
        except Exception:  # noqa: BLE001 - this is what we are looking for
            crashes += 1
            outcome = "CRASH"
            if crashes <= 5:
                print(f"crash on input {data!r}:\n{traceback.format_exc()}", file=sys.stderr)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    seconds = time.monotonic() - started
    print(f"inputs tried: {args.inputs} in {seconds:.0f} s; crashes: {crashes}")
    for outcome, count in sorted(outcomes.items(), key=lambda item: -item[1])[:12]:
        print(f"  {count:7d}  predict/classify -> {outcome}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
