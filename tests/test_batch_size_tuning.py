"""--max_batch_size=auto: the choice, with a fake model whose batch times are known."""

from __future__ import annotations

import pytest

from service.models.batch_size_tuning import choose_batch_size
from service.process.settings import load_settings


class FakeModel:
    """Batch time = fixed overhead + per-item cost, slower per item past `knee` (a cache falling over)."""

    def __init__(self, overhead: float, per_item: float, knee: int = 10**9, past_knee: float = 0.0) -> None:
        self.now = 0.0
        self.calls: list[int] = []
        self._overhead, self._per_item, self._knee, self._past_knee = overhead, per_item, knee, past_knee

    def clock(self) -> float:
        return self.now

    def run(self, size: int) -> None:
        self.calls.append(size)
        self.now += self._overhead + self._per_item * size + self._past_knee * max(0, size - self._knee)


def choose(model: FakeModel, **kwargs):  # type: ignore[no-untyped-def]
    return choose_batch_size(model.run, clock=model.clock, min_seconds_per_size=0.0, **kwargs)


def test_the_best_throughput_wins_and_the_curve_is_kept():
    model = FakeModel(overhead=0.010, per_item=0.001, knee=32, past_knee=0.004)
    choice = choose(model)
    assert choice.batch_size == 32
    assert [p.batch_size for p in choice.curve][:6] == [1, 2, 4, 8, 16, 32]
    assert "max_batch_size 32" in choice.describe()


def test_climbing_stops_after_two_sizes_that_lose_throughput():
    model = FakeModel(overhead=0.004, per_item=0.001, knee=4, past_knee=0.01)
    choice = choose(model)
    assert choice.batch_size == 4
    assert max(model.calls) == 16  # 8 and 16 were slower per item: 32 and beyond never tried


def test_nearly_equal_throughputs_go_to_the_smaller_batch():
    # Throughput grows by under 3% past 4: every size from 4 up ties with the best (128), and the smallest
    # of them serves a backlog in full batches that each take less time, so 4 wins. The climb still goes on
    # to 128, since throughput never falls.
    model = FakeModel(overhead=0.0001, per_item=0.001)
    choice = choose(model)
    curve = {p.batch_size: p.items_per_second for p in choice.curve}
    assert curve[4] >= 0.97 * curve[128] > curve[2]
    assert choice.batch_size == 4
    assert choice.curve[-1].batch_size == 128


def test_a_smaller_size_more_than_3_percent_slower_than_the_best_is_not_a_tie():
    # 4 ms per call plus 1 ms per item: throughput climbs all the way to 128. 64 is within 3% of 128, 32 is
    # not, so 64 wins, not 32 and not 128.
    choice = choose(FakeModel(overhead=0.004, per_item=0.001))
    curve = {p.batch_size: p.items_per_second for p in choice.curve}
    assert curve[64] >= 0.97 * curve[128] and curve[32] < 0.97 * curve[128]
    assert choice.batch_size == 64


def test_the_latency_budget_caps_the_batch():
    model = FakeModel(overhead=0.010, per_item=0.001)
    choice = choose(model, latency_budget_seconds=0.020)  # 10 ms + 1 ms per item: 8 fits (18 ms), 16 not
    assert choice.batch_size == 8
    assert "within 20 ms" in choice.reason


def test_auto_is_a_flag_value_and_a_batching_file_value(tmp_path):
    settings = load_settings(["--max_batch_size=auto", "--batch_latency_budget_ms=250"], environ={})
    assert settings.auto_batch_size and settings.batch_latency_budget_ms == 250
    assert not load_settings(["--max_batch_size=16"], environ={}).auto_batch_size
    config = tmp_path / "batching.txt"
    config.write_text("max_batch_size { value: auto }\nbatch_timeout_micros { value: 500 }\n")
    from_file = load_settings([f"--batching_parameters_file={config}"], environ={})
    assert from_file.auto_batch_size and from_file.batching.batch_timeout_micros == 500
    with pytest.raises(SystemExit):
        load_settings(["--max_batch_size=auto", "--allowed_batch_sizes=8,16"], environ={})


def test_the_server_measures_its_batch_size_and_exports_the_curve(tiny_model_base):
    from server_process import ServerProcess

    with ServerProcess(tiny_model_base, "--enable_batching=true", "--max_batch_size=auto", model_name="tiny") as server:
        chosen = server.metric_value("inference_max_batch_size", 'model="tiny"')
        text = server.metrics_text()
        measured = {int(line.split('batch_size="')[1].split('"')[0]): float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines() if line.startswith("inference_batch_size_throughput{")}
        assert chosen in measured and measured[chosen] >= 0.97 * max(measured.values())
        assert 1 in measured and len(measured) >= 3
        assert any("max_batch_size" in line and "measured 1:" in line for line in server.log_lines)
        assert any(f"tiny:{int(chosen)}" in line for line in server.log_lines if "ready:" in line)


def _counting_runtime(version_dir):  # type: ignore[no-untyped-def]
    """A loaded runtime whose batches are counted, to tell whether the ladder ran in this process."""
    from service.runtime.model_runtime import ModelRuntime

    runtime = ModelRuntime(version_dir)
    runtime.batches_run = []  # type: ignore[attr-defined]
    run_batch = runtime.run_batch

    def counted(items, padded_size):  # type: ignore[no-untyped-def]
        runtime.batches_run.append(padded_size)  # type: ignore[attr-defined]
        return run_batch(items, padded_size)

    runtime.run_batch = counted  # type: ignore[method-assign]
    return runtime


def test_the_ladder_runs_in_a_child_process_so_the_serving_runtime_runs_no_batch(tiny_model_base):
    from service.models.batch_size_probe import time_batch_sizes

    runtime = _counting_runtime(tiny_model_base / "1")
    choice = time_batch_sizes(runtime, ("serve",), latency_budget_seconds=0.0)
    assert runtime.batches_run == []
    measured = {point.batch_size for point in choice.curve}
    assert choice.batch_size in measured and 1 in measured and len(measured) >= 3


def test_a_child_that_cannot_time_the_model_leaves_the_timing_to_the_server_with_a_warning(
    tiny_model_base, tmp_path, caplog
):
    import shutil

    from service.models.batch_size_probe import time_batch_sizes

    copy = tmp_path / "1"
    shutil.copytree(tiny_model_base / "1", copy)
    runtime = _counting_runtime(copy)
    shutil.rmtree(copy)  # the child finds no SavedModel to load; the loaded runtime still runs
    with caplog.at_level("WARNING", logger="service.models.batch_size_probe"):
        choice = time_batch_sizes(runtime, ("serve",), latency_budget_seconds=0.0)
    warnings = [record.getMessage() for record in caplog.records]
    assert any("timing batch sizes in a child process failed" in w and "no saved_model.pb" in w for w in warnings)
    assert choice.batch_size in runtime.batches_run and 1 in runtime.batches_run
