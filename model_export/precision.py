"""Compute precision as an export option: the same weights, run in bfloat16 or float16, outputs float32."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import keras

PRECISIONS = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def precision_warning(precision: str, flags: set[str] | None = None) -> str | None:
    """Why this precision may be slow on this machine, or None when it should pay off."""
    flags = cpu_flags() if flags is None else flags
    if precision == "bf16" and not ({"avx512_bf16", "amx_bf16"} & flags):
        return "this CPU has neither AVX512-BF16 nor AMX-BF16: bfloat16 will be emulated and likely slower than fp32"
    if precision == "fp16":
        return "float16 pays off on GPUs; on a CPU it is usually slower than fp32"
    return None


@contextlib.contextmanager
def compute_precision(precision: str) -> Iterator[None]:
    """Build models inside this block to compute in `precision` (variables stay float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
