"""The server's own record, read from its Prometheus endpoint: batch sizes and memory."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class ServerSnapshot:
    batch_size_sum: float = 0.0
    batch_count: float = 0.0
    compute_seconds_sum: float = 0.0
    rss_bytes: float | None = None

    def mean_batch_size_since(self, earlier: "ServerSnapshot") -> float | None:
        batches = self.batch_count - earlier.batch_count
        return (self.batch_size_sum - earlier.batch_size_sum) / batches if batches > 0 else None

    def mean_batch_seconds_since(self, earlier: "ServerSnapshot") -> float | None:
        batches = self.batch_count - earlier.batch_count
        return (self.compute_seconds_sum - earlier.compute_seconds_sum) / batches if batches > 0 else None


def scrape(metrics_url: str | None, timeout: float = 5.0) -> ServerSnapshot:
    """Totals over all models; an unreachable endpoint (another server kind) gives an empty snapshot."""
    if not metrics_url:
        return ServerSnapshot()
    try:
        with urllib.request.urlopen(metrics_url, timeout=timeout) as response:
            text = response.read().decode()
    except OSError:
        return ServerSnapshot()
    size_sum = count = compute = 0.0
    rss = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "inference_batch_size_sum":
                size_sum += sample.value
            elif sample.name == "inference_batch_size_count":
                count += sample.value
            elif sample.name == "inference_compute_seconds_sum":
                compute += sample.value
            elif sample.name == "process_resident_memory_bytes":
                rss = sample.value
    return ServerSnapshot(batch_size_sum=size_sum, batch_count=count, compute_seconds_sum=compute, rss_bytes=rss)


def batch_size_choice(metrics_url: str | None, timeout: float = 5.0) -> tuple[int | None, dict[int, float]]:
    """What `--max_batch_size=auto` chose and the throughput it timed at each size (items/s), from the
    server's gauges; (None, {}) when the server exports neither."""
    if not metrics_url:
        return None, {}
    with urllib.request.urlopen(metrics_url, timeout=timeout) as response:
        text = response.read().decode()
    chosen: int | None = None
    curve: dict[int, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "inference_max_batch_size":
                chosen = int(sample.value)
            elif sample.name == "inference_batch_size_throughput":
                curve[int(sample.labels["batch_size"])] = round(sample.value, 2)
    return chosen, dict(sorted(curve.items()))
