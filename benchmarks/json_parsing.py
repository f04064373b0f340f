"""What a REST body costs to parse: orjson (the server's parser) against Python's own, on the bodies the load
generator sends. A body holds the interpreter while it is parsed, so this is also the time it takes from
every other request on the server."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

import numpy as np
import orjson

from benchmarks.load import Workload

# The trivial model's request (one 32×32×3 float image), and 128 of them in one body.
BODIES = {"trivial_request": 1, "batch_of_128": 128}


def _median_seconds(parse: Callable[[bytes], Any], body: bytes, min_seconds: float) -> float:
    parse(body)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < min_seconds:
        begin = time.perf_counter()
        parse(body)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def measure_json_parsing(min_seconds: float = 1.0) -> dict[str, Any]:
    """Median parse time of each body with each parser, alternating parsers body by body."""
    report: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    for name, rows in BODIES.items():
        array = rng.random((rows, 32, 32, 3), dtype=np.float32)
        [body] = Workload.tensors("tiny", "pixels", [array], signature="classify_pixels", protocol="tfs-rest").requests
        orjson_s = _median_seconds(orjson.loads, body, min_seconds)
        python_s = _median_seconds(json.loads, body, min_seconds)
        report[name] = {
            "body_bytes": len(body),
            "orjson_ms": round(orjson_s * 1e3, 3),
            "python_json_ms": round(python_s * 1e3, 3),
            "python_over_orjson": round(python_s / orjson_s, 2),
            "orjson_ms_per_mb": round(orjson_s * 1e3 / (len(body) / 1e6), 2),
        }
    return report
