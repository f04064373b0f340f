"""The shipped HPA on queue depth, proven without a cluster: its algorithm, then a short load step on the real server.

The full run (benchmarks/autoscaling_simulation.py) makes the plot in docs/deploy.md; here the HPA clock runs 20x
faster than the server's so the low -> high -> low story takes ~30 s.
"""

from __future__ import annotations

import sys

import pytest

from deploy_tools import one, render
from server_process import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.autoscaling_simulation import Phase, plot, run_simulation, shipped_autoscaling  # noqa: E402
from benchmarks.hpa import HpaController, HpaSpec  # noqa: E402


@pytest.fixture(scope="module")
def cpu_overlay():
    return render("cpu")


def test_hpa_algorithm_follows_kubernetes_rules(cpu_overlay):
    spec = HpaSpec.from_manifest(one(cpu_overlay, "HorizontalPodAutoscaler"))
    assert (spec.min_replicas, spec.max_replicas, spec.target_average_value) == (2, 20, 16.0)
    hpa = HpaController(spec, replicas=2)
    # Every 15 s (the controller's sync period): on target, then 4x the target for a minute, then empty.
    metric = {0: 17.5, **{t: 64.0 for t in range(15, 90, 15)}}
    replicas = {t: hpa.sync(t, metric.get(t, 0.0)) for t in range(0, 600, 15)}
    assert replicas[0] == 2  # within the 10 % tolerance nothing moves
    # Up only once the 30 s window holds only high proposals, by the larger of +100 % and +4 pods per 30 s.
    assert [replicas[t] for t in (15, 30, 45, 60, 75)] == [2, 6, 6, 12, 12]
    # The queue empties: the highest proposal of the last 300 s (at 75 s) holds the count until 375 s...
    assert {replicas[t] for t in range(75, 375, 15)} == {12}
    # ...then at most half goes per minute, down to minReplicas.
    assert [replicas[t] for t in (375, 420, 435, 480, 495, 585)] == [6, 6, 3, 3, 2, 2]
    # Never above maxReplicas (a fresh controller has no window to wait out).
    hpa = HpaController(spec, replicas=19)
    assert [hpa.sync(t, 1000.0) for t in (0, 15, 30)] == [20, 20, 20]


def test_shipped_hpa_scales_up_under_a_load_step_and_back_down_after(cpu_overlay, tmp_path):
    hpa, batching_text = shipped_autoscaling(cpu_overlay)
    time_scale = 20.0
    # Loads in pods' worth of work (one pod's throughput is measured first): 0.35 pods before and after,
    # 3.5 during the step, so two pods queue and more are needed, on a fast machine or a slow one. The low tail
    # is the 300 s stabilization window plus 220 s, so a queue that drains slowly on a busy machine still leaves
    # time to see the scale-down.
    timeline = run_simulation(
        hpa, batching_text, [Phase(40, 0.35), Phase(160, 3.5), Phase(520, 0.35)], time_scale=time_scale,
        work_dir=tmp_path, relative_to_capacity=True,
    )
    print(f"\none pod sustained {timeline.pod_capacity:.1f} images/s; peak queue {max(timeline.queue_depth):.0f}, "
          f"replicas {timeline.replicas[0]} -> {max(timeline.replicas)} -> {timeline.replicas[-1]}")
    spec = HpaSpec.from_manifest(hpa)
    assert timeline.failed == 0
    assert timeline.replicas[0] == spec.min_replicas
    high = [i for i, t in enumerate(timeline.seconds) if 40 <= t < 200]
    # The step queued images on the real server beyond the target, and the HPA added pods.
    assert max(timeline.queue_depth[i] for i in high) > spec.target_average_value
    peak = max(timeline.replicas)
    assert peak > spec.min_replicas
    first_up = timeline.first_time(lambda r: r > spec.min_replicas)
    assert first_up is not None and first_up >= 40  # no scale-up while the load was low
    # Scale-down waits out the 300 s window after the last scale-up, then the queue is empty and pods go.
    last_up = max(t for t, before, after in zip(timeline.seconds[1:], timeline.replicas, timeline.replicas[1:])
                  if after > before)
    first_down = next((t for t, before, after in zip(timeline.seconds[1:], timeline.replicas, timeline.replicas[1:])
                       if after < before), None)
    assert first_down is not None, f"never scaled down (peak {peak}, last scale-up at {last_up:.0f} s)"
    assert first_down - last_up >= spec.scale_down.stabilization_window_seconds - 2 * spec.sync_period_seconds
    assert timeline.replicas[-1] < peak
    assert timeline.queue_depth[-1] <= spec.target_average_value
    output = tmp_path / "autoscaling.png"
    plot(timeline, output, "test")
    assert output.stat().st_size > 10_000


def test_when_decoding_is_the_bottleneck_replicas_rise_before_requests_fail(cpu_overlay, tmp_path):
    """Large images and one decode thread: images wait in the decode pool while the batch queue stays short.
    The HPA scales on the whole waiting backlog (decoding + queued), so it adds pods before any request is
    refused; on the queue depth alone it would see almost nothing."""
    hpa, batching_text = shipped_autoscaling(cpu_overlay)
    timeline = run_simulation(
        hpa, batching_text, [Phase(40, 0.35), Phase(160, 3.0), Phase(60, 0.35)], time_scale=20.0,
        work_dir=tmp_path, relative_to_capacity=True, image_side=2400,
    )
    spec = HpaSpec.from_manifest(hpa)
    first_up = timeline.first_time(lambda r: r > spec.min_replicas)
    peak = max(range(len(timeline.queue_depth)), key=timeline.queue_depth.__getitem__)
    print(f"\ndecode-bound pod sustained {timeline.pod_capacity:.1f} images/s; waiting backlog peaked at "
          f"{timeline.queue_depth[peak]:.0f} ({timeline.decoding[peak]:.0f} decoding); first scale-up at "
          f"{first_up} s, first refusal at {timeline.first_refusal} s; refused {timeline.rejected}, failed {timeline.failed}")
    # Decoding was the bottleneck: most of the waiting work was in front of the decode pool, not in the queue.
    assert timeline.decoding[peak] > 0.5 * timeline.queue_depth[peak] > 0
    assert first_up is not None and first_up >= 40
    assert timeline.first_refusal is None or first_up < timeline.first_refusal
    assert timeline.failed == 0
