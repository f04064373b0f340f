"""A SavedModel signature served by Triton through PyTriton, as a user without a TensorFlow backend would.

Runs in the Triton peer's own virtualenv (nvidia-pytriton + tensorflow), not in the project's. Triton's dynamic
batcher merges requests; PyTriton hands each batch to `infer`, which calls the signature once. Prints
`ready: grpc=127.0.0.1:PORT` when the model answers, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.request

import numpy as np
import tensorflow as tf
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, help="a SavedModel version directory")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--signature", required=True)
    parser.add_argument("--max-batch-size", type=int, required=True)
    parser.add_argument("--max-queue-delay-us", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()

    signature = tf.saved_model.load(args.model_dir).signatures[args.signature]
    [(input_name, spec)] = signature.structured_input_signature[1].items()
    # Triton needs at least one dimension per batch item: a signature input of shape [N] (one JPEG per row)
    # is declared [1], so a request carries [1, 1], and is flattened back to [N] for the call.
    per_item = tuple(int(d) for d in spec.shape[1:]) or (1,)
    flatten = spec.shape.rank == 1
    dtype = bytes if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    outputs = [
        Tensor(name=name, dtype=bytes if out.dtype == tf.string else out.dtype.as_numpy_dtype,
               shape=tuple(int(d) for d in out.shape[1:]))
        for name, out in signature.structured_outputs.items()
    ]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        value = inputs[input_name]
        result = signature(**{input_name: tf.constant(value.reshape(-1) if flatten else value)})
        return {name: value.numpy() for name, value in result.items()}

    # SIGTERM unwinds `with Triton(...)`, which stops tritonserver and removes PyTriton's workspace and shared
    # memory; Python's default action would leave both behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = TritonConfig(grpc_address="127.0.0.1", grpc_port=args.grpc_port, http_address="127.0.0.1",
                          http_port=args.http_port, metrics_port=args.metrics_port, allow_gpu_metrics=False)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.model_name, infer_func=infer,
            inputs=[Tensor(name=input_name, dtype=dtype, shape=per_item)], outputs=outputs,
            config=ModelConfig(max_batch_size=args.max_batch_size,
                               batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us)),
            strict=False,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{args.http_port}/v2/models/{args.model_name}/config") as response:
            print("config: " + json.dumps(json.load(response), separators=(",", ":")), flush=True)
        print(f"ready: grpc=127.0.0.1:{args.grpc_port}", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
