"""The benchmark CLI works end to end against a real server on a trivial model (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.inprocess import InProcessModel, measure_in_process
from benchmarks.interleave import alternate, paired, server_block
from benchmarks.load import SingleRequests, Workload
from benchmarks.corpus import jpeg_corpus
from benchmarks.launcher import floor_server
from server_process import REPO_ROOT


def run_load(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180
    )


def test_load_against_our_server_writes_json_and_plot(tiny_server, tmp_path):
    result = run_load(
        "--target", tiny_server.address, "--model", "tiny", "--input", "pixels", "--concurrency", "1,4",
        "--rate", "40", "--duration", "1", "--warmup", "0.3", "--metrics-url",
        f"http://127.0.0.1:{tiny_server.metrics_port}/metrics", "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "load.json").read_text())
    closed = [level for level in report["levels"] if level["mode"] == "closed"]
    assert [level["concurrency"] for level in closed] == [1, 4]
    for level in report["levels"]:
        assert level["ok"] > 0 and level["errors"] == {}
        assert level["p50_ms"] <= level["p99_ms"]
        assert level["mean_batch_size"] >= 1 and level["server_rss_mb"] > 0
    [open_level] = [level for level in report["levels"] if level["mode"] == "open"]
    assert open_level["rate"] == 40
    assert (tmp_path / "load.png").read_bytes().startswith(b"\x89PNG")


def test_floor_server_answers_the_same_requests(tmp_path):
    with floor_server() as server:
        result = run_load(
            "--target", server.target, "--model", "tiny", "--input", "pixels", "--concurrency", "2",
            "--duration", "0.5", "--warmup", "0.2", "--out", str(tmp_path),
        )
    assert result.returncode == 0, result.stderr[-3000:]
    [level] = json.loads((tmp_path / "load.json").read_text())["levels"]
    assert level["ok"] > 0 and level["errors"] == {} and level["mean_batch_size"] is None


def test_in_process_limit_reports_each_batch_size(tiny_model_base):
    result = measure_in_process(tiny_model_base / "1", jpeg_corpus(4), batch_sizes=(1, 4), seconds_per_size=0.2)
    assert [level.batch_size for level in result.levels] == [1, 4]
    assert all(level.images_per_s > 0 for level in result.levels)
    assert result.best in result.levels



def test_alternate_interleaves_both_sides_and_takes_the_median_per_round(tiny_server, tiny_model_base):
    local = InProcessModel(tiny_model_base / "1", jpeg_corpus(4))
    workload = Workload.encoded_images("tiny", jpeg_corpus(4))
    order: list[str] = []

    def in_process() -> float:
        order.append("in-process")
        return local.measure(1, 0.2).p50_batch_ms

    def server() -> float:
        order.append("server")
        return server_block(tiny_server.address, workload, 1, 0.3, 0.1).percentile(50)

    comparison = alternate(in_process, server, rounds=3, kind="difference")
    assert order == ["in-process", "server", "server", "in-process", "in-process", "server"]  # ABBA
    summary = comparison.summary()
    assert summary["rounds"] == 3 and len(summary["difference"]) == 3
    assert all(value > 0 for value in comparison.baseline + comparison.candidate)
    assert comparison.median == sorted(c - b for b, c in zip(comparison.baseline, comparison.candidate))[1]
    assert alternate(lambda: 2.0, lambda: 3.0, rounds=2, kind="ratio").median == 1.5


def test_paired_measures_both_sides_on_the_same_input_in_abba_order_after_warmup():
    calls: list[tuple[str, int]] = []

    def side(name: str, value: float):
        def measure(index: int) -> float:
            calls.append((name, index))
            return value + index

        return measure

    comparison = paired(side("in-process", 10.0), side("server", 12.0), pairs=4, warmup_pairs=1)
    assert calls == [("server", -1), ("in-process", -1), ("in-process", 0), ("server", 0), ("server", 1),
                     ("in-process", 1), ("in-process", 2), ("server", 2), ("server", 3), ("in-process", 3)]
    assert comparison.baseline == [10.0, 11.0, 12.0, 13.0] and comparison.candidate == [12.0, 13.0, 14.0, 15.0]
    assert comparison.median == 2.0 and comparison.difference_of_medians == 2.0


def test_lone_server_requests_pair_with_in_process_calls_on_the_same_image(tiny_server, tiny_model_base):
    images = jpeg_corpus(3)
    local = InProcessModel(tiny_model_base / "1", images)
    with SingleRequests(tiny_server.address, Workload.encoded_images("tiny", images)) as lone:
        comparison = paired(local.time_one, lone.latency_ms, pairs=4, warmup_pairs=1)
    assert len(comparison.baseline) == len(comparison.candidate) == 4
    assert all(value > 0 for value in comparison.baseline + comparison.candidate)


def test_closed_loop_throughput_is_clients_over_their_mean_cycle_wherever_the_window_falls():
    """32 clients against a server that alternates a batch of 25 (1.6 s) and a batch of 7 (0.45 s): each
    client resends as soon as it is answered, so every request waits one whole cycle of 2.05 s, and the
    throughput is 32 / 2.05 images/s. Counted from one answer to another, a window that starts on a batch of
    25 and ends on a batch of 7 reads about 13% high, and the reverse low; by cycles every window is exact."""
    from benchmarks.load import _Recorder

    cycle, small_batch_s = 2.05, 0.45
    recorder = _Recorder()
    for turn in range(12):
        for client in range(32):
            phase = 0.0 if client < 25 else small_batch_s
            answered = turn * cycle + phase
            recorder.answers.append((client, answered - cycle, answered, None))
    recorder.answers.sort(key=lambda answer: answer[2])

    for measure_from, measure_until in ((2.0, 10.3), (2.1, 10.3), (2.0, 10.7), (2.5, 19.0), (0.0, 6.0)):
        window = _Recorder()
        window.answers = list(recorder.answers)
        span = window.keep_window(measure_from, measure_until, clients=32)
        level = window.result("closed", 32, None, span, 1)
        assert level.ok > 0
        assert level.images_per_s == pytest.approx(32 / cycle, rel=1e-9)
        assert level.percentile(50) == pytest.approx(cycle * 1000)


def test_goodput_scenario_runs_both_policies_and_reports_each_case(tiny_model_base):
    from benchmarks.goodput import Case, run_goodput

    report = run_goodput(
        tiny_model_base / "1", "tiny", Workload.pixels("tiny", 32, 32), ("--enable_batching=true", "--max_batch_size=8"),
        duration_s=1.0, warmup_s=0.3, cases=(Case(1.5, 5),),
    )
    assert report["capacity_requests_per_s"] > 0 and report["batch_seconds"] > 0
    [(name, sides)] = report["cases"].items()
    assert name == "1.5x_capacity_deadline_5_batches" and set(sides) == {"before", "after"}
    for figures in sides.values():
        assert figures["answered_in_time"] + figures["refused_early"] + figures["accepted_but_late"] > 0
        assert figures["deadline_ms"] == pytest.approx(5000 * report["batch_seconds"], rel=0.05)
    assert sides["before"]["refused_early"] == 0  # queue-and-expire never refuses for a deadline
    for what in ("goodput_over_capacity", "refused_median_ms", "accepted_p99_ms"):
        assert what in sides["after"]  # what the published goodput tables read


def test_in_process_goodput_compares_the_policies_on_the_batcher_alone(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "goodput", "--in-process", "--duration", "1", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "goodput_in_process.json").read_text())
    assert len(report["cases"]) == 4
    for sides in report["cases"].values():
        assert sides["before"]["refused_early"] == 0 and sides["after"]["refused_early"] > 0


@pytest.mark.parametrize("protocol", ["tfs-grpc", "tfs-rest", "kserve-grpc", "kserve-http", "kserve-http-json"])
@pytest.mark.parametrize("kind", ["jpeg", "pixels"])
def test_the_load_generator_speaks_each_protocol(tiny_server, protocol, kind):
    """The same load in TF Serving gRPC, TF Serving REST and KServe v2 (gRPC, HTTP with binary or JSON
    tensors): what a user points at TF Serving, Triton or MLServer."""
    from benchmarks.load import HTTP_PROTOCOLS, Workload

    if (protocol, kind) == ("kserve-http-json", "jpeg"):
        with pytest.raises(ValueError, match="use kserve-http"):  # JSON BYTES are text, not encoded images
            Workload.encoded_images("tiny", jpeg_corpus(4), protocol=protocol)
        return
    workload = (Workload.encoded_images("tiny", jpeg_corpus(4), protocol=protocol) if kind == "jpeg"
                else Workload.pixels("tiny", 32, 32, count=4, protocol=protocol))
    target = tiny_server.address if protocol not in HTTP_PROTOCOLS else f"127.0.0.1:{tiny_server.metrics_port}"
    level = server_block(target, workload, 2, 0.5, 0.1)
    assert level.ok > 0 and not level.errors, level.errors


def test_compare_alternates_two_targets_and_reports_ratios(tiny_server, tmp_path, capsys):
    from benchmarks.cli import main

    assert main(["compare", tiny_server.address, tiny_server.address, "--model", "tiny", "--input", "pixels",
                 "--concurrency", "2", "--rounds", "2", "--duration", "0.3", "--warmup", "0.1",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    level = report["levels"]["2"]
    assert len(level["requests_per_s"]["ratio"]) == 2 and level["errors"] == {"a": 0, "b": 0}
    assert "ratio" in capsys.readouterr().out


def test_compare_puts_one_servers_protocols_against_each_other(tiny_server, tmp_path):
    """--protocol-b: the same payload over KServe v2 gRPC (A) and KServe v2 HTTP with binary tensors (B)."""
    from benchmarks.cli import main

    assert main(["compare", tiny_server.address, f"127.0.0.1:{tiny_server.metrics_port}", "--model", "tiny",
                 "--input", "pixels", "--protocol", "kserve-grpc", "--protocol-b", "kserve-http",
                 "--concurrency", "2", "--rounds", "2", "--duration", "0.3", "--warmup", "0.1",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    assert (report["protocol"], report["protocol_b"]) == ("kserve-grpc", "kserve-http")
    level = report["levels"]["2"]
    assert level["errors"] == {"a": 0, "b": 0} and all(r > 0 for r in level["requests_per_s"]["ratio"])


@pytest.mark.parametrize("protocol", ["tfs-grpc", "tfs-rest", "kserve-grpc", "kserve-http", "kserve-http-json"])
def test_load_sends_a_tensor_of_any_name_shape_and_type(tiny_server, tmp_path, protocol):
    """docs/performance.md's `--input tensor`, as a user would point it at their own model."""
    from benchmarks.cli import main
    from benchmarks.load import HTTP_PROTOCOLS

    target = tiny_server.address if protocol not in HTTP_PROTOCOLS else f"127.0.0.1:{tiny_server.metrics_port}"
    assert main(["load", "--target", target, "--protocol", protocol, "--model", "tiny", "--input", "tensor",
                 "--tensor-name", "pixels", "--tensor-shape", "1,32,32,3", "--signature", "classify_pixels",
                 "--concurrency", "2", "--duration", "0.3", "--warmup", "0.1", "--out", str(tmp_path)]) == 0
    level = json.loads((tmp_path / "load.json").read_text())["levels"][0]
    assert level["ok"] > 0 and not level["errors"]


def test_open_loop_counts_only_its_window_and_keeps_the_load_on_after_it(tiny_server):
    """Goodput's window: the requests sent after it go on (unmeasured), so the window's last requests wait
    behind later ones as the others did, rather than finishing alone once the load stops."""
    import time

    import uvloop

    from benchmarks.load import open_loop

    workload = Workload.pixels("tiny", 32, 32)
    started = time.perf_counter()
    level = uvloop.run(open_loop(tiny_server.target, workload, 50.0, 1.0, warmup_s=0.2, cooldown_s=0.6))
    elapsed = time.perf_counter() - started
    counted = level.ok + sum(level.errors.values())
    assert 49 <= counted <= 51  # 50 requests/s over the 1 s window, neither the warm-up's nor the cooldown's
    assert elapsed >= 0.2 + 1.0 + 0.6 - 1 / 50  # the cooldown's requests were sent (the last one 20 ms before its end)


def test_auto_batch_is_judged_against_the_fixed_size_better_over_the_whole_run():
    from benchmarks.auto_batch import _judge_against_best_fixed, _start_summary

    # Start 1 alone would call fixed 32 the better size (auto ÷ 32 = 0.99 there); over both starts fixed 16
    # is the one auto does least well against, and every start is judged against it.
    starts = [
        _start_summary(64, {16: 17.0, 32: 17.1}, {"fixed_16": [15.0, 15.2], "fixed_32": [15.3, 15.4],
                                                  "auto": [15.2, 15.2]}, (16, 32)),
        _start_summary(128, {16: 17.1, 32: 16.9}, {"fixed_16": [15.6, 15.8], "fixed_32": [15.0, 15.1],
                                                   "auto": [15.5, 15.7]}, (16, 32)),
    ]
    report = {"starts": starts}
    _judge_against_best_fixed(report, (16, 32))
    assert report["best_fixed"] == 16
    assert report["auto_over_best_fixed_by_start"] == [
        start["auto_over_fixed"]["16"]["median_ratio"] for start in starts
    ]
    assert report["auto_over_best_fixed_all_rounds"]["rounds"] == 4
    assert report["chosen_by_start"] == [64, 128]
    ratios = [15.2 / 15.0, 15.2 / 15.2, 15.5 / 15.6, 15.7 / 15.8]
    assert report["auto_over_best_fixed_all_rounds"]["min"] == round(min(ratios), 3)


def test_auto_batch_reports_what_two_servers_of_one_configuration_differ_by():
    from benchmarks.auto_batch import CONTROL, _judge_against_best_fixed, _start_summary

    starts = [
        _start_summary(64, {16: 17.0}, {"fixed_16": [15.0, 16.0], "fixed_32": [15.3, 15.4], "auto": [15.2, 15.2],
                                        CONTROL: [15.3, 15.6]}, (16, 32)),
        _start_summary(128, {16: 17.1}, {"fixed_16": [15.6, 15.8], "fixed_32": [15.0, 15.1], "auto": [15.5, 15.7],
                                         CONTROL: [15.6, 16.1]}, (16, 32)),
    ]
    assert starts[0]["control_over_same_size"] == {"ratios": [1.02, 0.975], "median_ratio": 0.998}
    report = {"starts": starts}
    _judge_against_best_fixed(report, (16, 32))
    # rounded as each start keeps them
    ratios = sorted(round(r, 3) for r in (15.3 / 15.0, 15.6 / 16.0, 15.6 / 15.6, 16.1 / 15.8))
    assert report["control_over_same_size_all_rounds"] == {
        "rounds": 4, "median_ratio": round((ratios[1] + ratios[2]) / 2, 3), "min": ratios[0], "max": ratios[-1],
    }


def test_auto_batch_rotates_which_server_each_start_launches_first():
    from benchmarks.auto_batch import launch_order

    sides = ["fixed_16", "fixed_32", "auto", "control"]
    orders = [launch_order(sides, start) for start in range(4)]
    assert [order[0] for order in orders] == sides  # each side first once
    for position in range(4):  # and in every position once
        assert sorted(order[position] for order in orders) == sorted(sides)
    assert all(sorted(order) == sorted(sides) for order in orders)
    assert launch_order(sides, 4) == launch_order(sides, 0)
