"""The machine a result was measured on, recorded beside the figures: they mean nothing without it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, memory and instruction sets that move TensorFlow's speed, and the software versions."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "cpu": cpu.get("model name", platform.processor() or platform.machine()),
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "avx512": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "gpu": None,  # the suite runs the CPU build; a GPU run names its device here
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "grpcio": _version("grpcio"),
        "os": f"{platform.system()} {platform.release()}",
        "argv": sys.argv[1:],
    }


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as lines:
            for line in lines:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
