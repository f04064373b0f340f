"""Command-line pieces shared by the subcommands: comma-separated integer lists and the workload flags."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.corpus import jpeg_corpus
from benchmarks.load import PROTOCOLS, Workload


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """What to send, and in which protocol: shared by `load` and `compare`."""
    parser.add_argument("--protocol", choices=PROTOCOLS, default="tfs-grpc",
                        help="TF Serving gRPC (default), TF Serving REST, KServe v2 gRPC (Triton, MLServer), or KServe v2 "
                        "over HTTP with binary tensors (kserve-http) or JSON tensors (kserve-http-json)")
    parser.add_argument("--model", default="inception", help="the model's name on the server (default inception)")
    parser.add_argument(
        "--input", choices=["jpeg", "pixels", "tensor"], default="jpeg",
        help="jpeg: one encoded image per request (input 'images'); pixels: float [1,H,W,3] (input 'pixels'); "
        "tensor: random values of --tensor-shape and --tensor-dtype under --tensor-name, for any model",
    )
    parser.add_argument("--pixels-size", type=int, default=32, help="H and W for --input pixels (default 32)")
    parser.add_argument("--tensor-name", default="x", help="input name for --input tensor (default x)")
    parser.add_argument("--tensor-shape", type=int_list, default=[1, 32, 32, 3],
                        help="shape for --input tensor, batch dimension included (default 1,32,32,3)")
    parser.add_argument("--tensor-dtype", choices=["float32", "float64", "int32", "int64"], default="float32")
    parser.add_argument("--signature", default=None,
                        help="TF Serving signature (default: predict_images for jpeg, classify_pixels for pixels, "
                        "the server's default for tensor); KServe v2 has none")


def workload_from_args(args: argparse.Namespace) -> Workload:
    if args.input == "jpeg":
        return Workload.encoded_images(args.model, jpeg_corpus(64), signature=args.signature or "predict_images",
                                       protocol=args.protocol)
    if args.input == "pixels":
        return Workload.pixels(args.model, args.pixels_size, args.pixels_size, protocol=args.protocol)
    rng = np.random.default_rng(0)
    arrays = [(rng.random(args.tensor_shape) * 100).astype(args.tensor_dtype) for _ in range(16)]
    return Workload.tensors(args.model, args.tensor_name, arrays, signature=args.signature or "",
                            protocol=args.protocol)
