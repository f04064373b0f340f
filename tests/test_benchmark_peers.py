"""`python -m benchmarks peers` without the peers: options, the peers' configurations, the requests every server
gets, and the report's shape from made-up blocks. Nothing is installed and no server starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from tritonclient.grpc import service_pb2

from benchmarks import peers
from benchmarks.load import MODEL_INFER_METHOD, LevelResult

INCEPTION = peers.ModelSetup("inception", Path("models/bench/inception/1"), "predict_images", 16,
                             ("--enable_batching=true", "--max_batch_size=16"))
TINY = peers.ModelSetup("tiny", Path("models/bench/tiny/1"), "classify_pixels", 64, peers.TRIVIAL_FLAGS)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    peers.add_peers_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["peers", *argv])


def test_defaults_measure_both_peers_into_the_published_report():
    args = parse()
    assert args.peers == ["triton", "mlserver"]
    assert (args.rounds, args.duration, args.warmup) == (4, 6.0, 5.0)
    assert args.out == Path("docs/benchmarks/peers-2core-cpu.json")
    assert args.models == Path("models/bench")
    assert args.skip_install is False


def test_peers_option_picks_some_and_refuses_unknown_names(capsys):
    assert parse("--peers", "mlserver").peers == ["mlserver"]
    assert parse("--peers", "triton, mlserver", "--rounds", "6", "--skip-install").rounds == 6
    with pytest.raises(SystemExit):
        parse("--peers", "torchserve")
    assert "torchserve" in capsys.readouterr().err


def test_each_peer_installs_our_tensorflow_release():
    for peer in peers.PEERS.values():
        wanted = peers.requirements(peer, "2.21.0")
        assert wanted[-1] == "tensorflow==2.21.0"
        assert any(requirement.startswith(peer.distribution) for requirement in wanted)
    assert "uvloop<0.22" in peers.requirements(peers.PEERS["mlserver"], "2.21.0")


def test_skip_install_without_a_virtualenv_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="without --skip-install"):
        peers.ensure_venv(peers.PEERS["triton"], "2.21.0", skip_install=True)


def test_an_installed_virtualenv_with_the_same_requirements_is_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path)
    peer = peers.PEERS["mlserver"]
    (tmp_path / "mlserver").mkdir()
    (tmp_path / "mlserver" / ".requirements").write_text("\n".join(peers.requirements(peer, "2.21.0")))
    monkeypatch.setattr(peers.subprocess, "run", lambda *a, **k: pytest.fail("nothing to install"))
    assert peers.ensure_venv(peer, "2.21.0") == tmp_path / "mlserver" / "bin" / "python"


def test_triton_gets_the_same_batch_size_and_no_queue_delay():
    command = peers.triton_command(Path("/venv/bin/python"), INCEPTION, peers.Ports(9001, 9000, 9002))
    assert command[0] == "/venv/bin/python"
    assert command[1].endswith("benchmarks/peer_runtimes/triton_savedmodel.py")
    assert "--max-batch-size=16" in command and "--max-queue-delay-us=0" in command
    assert "--signature=predict_images" in command and "--model-name=inception" in command
    assert {"--grpc-port=9001", "--http-port=9000", "--metrics-port=9002"} <= set(command)
    assert Path(command[2].split("=", 1)[1]).is_absolute()


def test_mlserver_batches_adaptively_with_the_savedmodel_runtime():
    settings, model = peers.mlserver_settings(TINY, peers.Ports(9101, 9100, 9102))
    assert (settings["grpc_port"], settings["http_port"], settings["metrics_port"]) == (9101, 9100, 9102)
    assert settings["host"] == "127.0.0.1" and settings["parallel_workers"] == 1
    assert model["name"] == "tiny" and model["implementation"] == "mlserver_savedmodel.SavedModelRuntime"
    assert (model["max_batch_size"], model["max_batch_time"]) == (64, 0.001)
    assert model["parameters"]["extra"] == {"signature": "classify_pixels"}
    assert Path(model["parameters"]["uri"]).is_absolute()
    json.dumps([settings, model])  # both are written as JSON files
    assert (peers.RUNTIMES_DIR / "mlserver_savedmodel.py").is_file()


def test_every_server_gets_the_same_kserve_requests():
    loads = peers.workloads([b"\xff\xd8first", b"\xff\xd8second"])
    images, pixels = loads["inception"], loads["tiny"]
    assert images.protocol == pixels.protocol == "kserve-grpc"
    assert images.path == pixels.path == MODEL_INFER_METHOD
    request = service_pb2.ModelInferRequest.FromString(images.requests[1])
    assert request.model_name == "inception"
    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("images", "BYTES", [1, 1])
    assert request.raw_input_contents[0] == len(b"\xff\xd8second").to_bytes(4, "little") + b"\xff\xd8second"
    request = service_pb2.ModelInferRequest.FromString(pixels.requests[0])
    [tensor] = request.inputs
    assert (request.model_name, tensor.name, tensor.datatype, list(tensor.shape)) == ("tiny", "pixels", "FP32", [1, 32, 32, 3])
    assert len(request.raw_input_contents[0]) == 32 * 32 * 3 * 4
    assert images.images_per_request == pixels.images_per_request == 1


def block(requests_per_s: float, p50_ms: float) -> LevelResult:
    return LevelResult(mode="closed", concurrency=32, rate=None, duration_s=1.0, ok=int(requests_per_s),
                       ok_latencies_ms=[p50_ms] * 3)


def test_comparison_is_peer_over_ours_per_round():
    result = peers._comparison([block(30, 40), block(32, 42)], [block(15, 60), block(24, 63)],
                               lambda level: level.requests_per_s)
    assert result["ratio"] == [0.5, 0.75]
    assert result["median_ratio"] == 0.625 and result["spread"] == [0.5, 0.75]
    assert (result["ours_median"], result["peer_median"]) == (31.0, 19.5)
    assert len(result["blocks"]["ours"]) == len(result["blocks"]["peer"]) == 2


def test_report_shape_and_summary_from_made_up_results(tmp_path):
    args = parse("--rounds", "2", "--out", str(tmp_path / "peers.json"))
    report = peers.new_report(args, [INCEPTION, TINY], "2.21.0")
    throughput = peers._comparison([block(30, 900), block(32, 950)], [block(27, 990), block(33, 930)],
                                   lambda level: level.images_per_s)
    latency = peers._comparison([block(1, 40)] * 2, [block(1, 44)] * 2, lambda level: level.percentile(50))
    report["results"] = {"triton": {"inception": {"throughput_c32_images_per_s": throughput,
                                                  "lone_request_p50_ms": latency}}}
    report["failures"] = {"mlserver": [{"stage": "start (tiny)", "error": "RuntimeError: no", "log_tail": None}]}
    report["summary"] = peers.summary_rows(report["results"])
    peers.write_report(args.out, report)

    written = json.loads(args.out.read_text())
    assert written["machine"] == "2-core x86-64 VM with AVX512-BF16, no GPU"
    assert written["protocol"] == "kserve-grpc" and written["rounds"] == 2
    assert written["servers"]["batchserve"]["configs"]["tiny"] == list(peers.TRIVIAL_FLAGS)
    assert written["servers"]["triton"]["requirements"][-1] == "tensorflow==2.21.0"
    assert written["models"]["inception"]["shape"] == [1, 1]
    assert written["models"]["tiny"]["max_batch_size"] == 64
    assert written["ratios"].startswith("peer ÷ this server")
    rows = {row["figure"]: row for row in written["summary"]}
    assert rows["throughput_c32_images_per_s"]["peer_over_ours"] == 0.966
    assert rows["lone_request_p50_ms"]["peer_over_ours"] == 1.1
    assert rows["lone_request_p50_ms"]["ours"] == 40.0 and rows["lone_request_p50_ms"]["peer_value"] == 44.0
    assert written["failures"]["mlserver"][0]["stage"] == "start (tiny)"


def test_summary_prints_every_row_and_failure(capsys):
    report = {"summary": [{"peer": "mlserver", "model": "tiny", "figure": "p50_c1_ms", "ours": 1.2,
                           "peer_value": 4.8, "peer_over_ours": 4.0, "spread": [3.5, 4.5]},
                          {"peer": "mlserver", "model": "inception", "figure": "goodput", "ours": 0.9,
                           "peer_value": 0.0, "peer_over_ours": 0.0, "spread": None}],
              "failures": {"triton": [{"stage": "install", "error": "RuntimeError: pip failed\nmore"}]}}
    peers.print_summary(report)
    out = capsys.readouterr().out
    assert "4.000" in out and "3.500–4.500" in out
    assert "triton: FAILED at install: RuntimeError: pip failed" in out
    assert "more" not in out


def test_goodput_is_each_servers_own_capacity_share_and_peer_over_ours():
    def row(capacity: float, share: float) -> dict:
        return {"capacity_requests_per_s": capacity, "goodput_over_capacity": share}

    summary = peers.goodput_summary([row(32, 0.95), row(30, 0.9), row(31, 0.0)],
                                    [row(20, 0.0), row(22, 0.45), row(21, 0.3)])
    assert summary["capacity_requests_per_s"] == {"ours": 31, "peer": 21}
    assert summary["ours_median"] == 0.9 and summary["peer_median"] == 0.3
    assert summary["median_ratio"] == 0.333
    assert summary["ratio"][:2] == [0.0, 0.5] and summary["ratio"][2] != summary["ratio"][2]  # 0.3 ÷ 0: NaN
    assert summary["spread"] == [0.0, 0.5]
    assert (summary["load_over_capacity"], summary["deadline_batch_times"]) == (2.0, 2.0)
    assert peers.goodput_summary([row(30, 0.0)], [row(20, 0.0)])["median_ratio"] is None


def test_report_is_strict_json_with_null_for_a_ratio_over_zero(tmp_path):
    peers.write_report(tmp_path / "r.json", {"ratio": [float("nan"), 0.5], "nested": {"x": float("inf")}})
    assert json.loads((tmp_path / "r.json").read_text()) == {"ratio": [None, 0.5], "nested": {"x": None}}
