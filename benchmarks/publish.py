"""The figures on the README and the docs, rendered from the stored results, so a page cannot drift from its data.

A page marks each generated passage `<!-- figures:NAME:start -->` ... `<!-- figures:NAME:end -->`; NAME picks
a renderer below, which reads docs/benchmarks/suite-2core-cpu.json (written by `python -m benchmarks suite
--publish`) or docs/benchmarks/peers-2core-cpu.json (`python -m benchmarks peers`). `python -m benchmarks
publish` rewrites every marked passage; `--check` (and tests/test_published_figures.py) fails when a page
differs from what its data renders, or when a page states a measured figure outside a marked passage.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.goodput import CASES, Case

PUBLISHED_SUITE = "docs/benchmarks/suite-2core-cpu.json"
PUBLISHED_PEERS = "docs/benchmarks/peers-2core-cpu.json"
PUBLISHED_PLOT = "docs/images/performance.png"
PAGES = ("README.md", "docs/performance.md", "docs/batching.md")
# Pages scanned for figures stated outside a rendered passage: those above, and the ones that explain the
# design. (deploy, operations and observability state settings and a simulation's inputs, not results.)
SCANNED_PAGES = (*PAGES, "docs/architecture.md", "docs/serving.md", "docs/models.md")

_BLOCK = re.compile(r"<!-- figures:(?P<name>[a-z0-9-]+):start -->\n(?P<body>.*?)<!-- figures:(?P=name):end -->", re.S)
_ANY_MARKER = re.compile(r"<!-- figures:[^>]*-->")


@dataclass(frozen=True)
class Results:
    suite: dict[str, Any]
    peers: dict[str, Any] | None

    @classmethod
    def load(cls, root: Path) -> "Results":
        peers_path = root / PUBLISHED_PEERS
        return cls(
            suite=json.loads((root / PUBLISHED_SUITE).read_text()),
            peers=json.loads(peers_path.read_text()) if peers_path.is_file() else None,
        )

    @property
    def figures(self) -> dict[str, float]:
        return self.suite["figures"]

    def comparison(self, name: str) -> dict[str, Any]:
        return self.suite["interleaved"][name]


def _ratio(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _spread(comparison: dict[str, Any], digits: int = 2) -> str:
    values = comparison.get("ratio") or comparison.get("difference") or []
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}" if values else "-"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def machine_phrase(results: Results) -> str:
    """"a 2-core x86-64 VM without GPU (AMD EPYC, AVX-512 with BF16 instructions)", from the run's record."""
    machine = results.suite["machine"]
    arch = {"x86_64": "x86-64", "aarch64": "arm64"}.get(machine["architecture"], machine["architecture"])
    extensions = ("AVX-512 with BF16 instructions" if machine.get("avx512_bf16")
                  else "AVX-512" if machine.get("avx512") else "")
    detail = ", ".join(part for part in (machine["cpu"], extensions) if part)
    gpu = machine.get("gpu") or "without GPU"
    return f"a {machine['cores']}-core {arch} machine {gpu} ({detail})"


def _goodput_case(results: Results, case: Case) -> dict[str, Any]:
    return results.suite["goodput_under_deadlines"]["cases"][case.name]


def _goodput_window(report: dict[str, Any]) -> str:
    return (f"A request counts when it is sent within the measured {report['window_s']:g} s; the load runs, "
            "unmeasured, for one deadline before that and one after, so the queue is at its steady depth "
            "throughout the window.")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: tuple[str, ...] | None = None) -> str:
    align = align or ("---",) * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---- README ----

def readme_performance(results: Results) -> str:
    f = results.figures
    goodput = _goodput_case(results, Case(2, 2))
    rows = [
        ("throughput at 32 clients ÷ the model's own limit in-process", _ratio(f["inception_c32_over_in_process"])),
        ("a lone request's p50 latency over the model's own in-process call",
         f"+{f['lone_request_p50_minus_in_process_ms']:.1f} ms ({_ms(f['lone_request_p50_ms'])} in all)"),
        ("batching on ÷ off, 64 clients", _ratio(f["batching_on_over_off_c64"])),
    ]
    if "bf16_server_over_fp32_in_process" in f:
        rows.append(("bf16 export through the server ÷ fp32 in-process limit",
                     _ratio(f["bf16_server_over_fp32_in_process"])))
    rows += [
        ("refusal under 10× overload, p99", _ms(f["overload_refusal_p99_ms"])),
        ("answers within their deadline at 2× overload, deadlines of two batch times, ÷ capacity",
         f"{_ratio(goodput['after']['goodput_over_capacity'])} (queue-and-expire: "
         f"{_ratio(goodput['before']['goodput_over_capacity'])})"),
        ("REST ÷ gRPC requests/s, trivial model, 64 clients", _ratio(f["grpc_vs_rest_trivial_c64"])),
        ("REST (base64 JPEGs in JSON) ÷ the model's own limit in-process, 32 clients",
         _ratio(f["rest_inception_c32_over_in_process"])),
    ]
    return (f"Inception-v3 on {machine_phrase(results)}, one JPEG per gRPC `Predict`, 32 concurrent clients "
            f"unless noted (measured {results.suite['started'][:10]}):\n\n"
            + _table(("measure", "result"), rows, ("---", "---:")))


PEER_NAMES = {"triton": "Triton", "mlserver": "MLServer"}
PEER_PACKAGES = {"triton": "nvidia-pytriton", "mlserver": "mlserver"}
# (model, figure in the peers results, row label, unit, how the figure reads)
PEER_ROWS = (
    ("inception", "throughput_c32_images_per_s", "Inception-v3, 32 clients: throughput", "images/s", "higher"),
    ("inception", "lone_request_p50_ms", "Inception-v3, a lone request: p50 latency", "ms", "lower"),
    ("tiny", "p50_c1_ms", "trivial model, 1 client: p50 latency", "ms", "lower"),
    ("tiny", "throughput_c64_requests_per_s", "trivial model, 64 clients: throughput", "requests/s", "higher"),
    ("inception", "goodput_2x_capacity_deadline_2_batch_times",
     "Inception-v3, 2× overload, deadlines of 2 batch times: answers in time", "÷ own capacity", "share"),
)


def _peers(results: Results) -> tuple[dict[str, Any], list[str]]:
    if results.peers is None:
        raise FileNotFoundError(f"{PUBLISHED_PEERS} is missing: run python -m benchmarks peers")
    report = results.peers
    return report, [peer for peer in PEER_NAMES if peer in report["servers"]]


def _peer_header(report: dict[str, Any], peer: str) -> str:
    """"Triton 2.51.0 (PyTriton 0.7.0)": the server's own version, and the package it came in."""
    server = report["servers"][peer]
    version = (server.get("metadata") or {}).get("version") or ""
    package = server.get("packages", {}).get(PEER_PACKAGES[peer])
    via = f" (PyTriton {package})" if peer == "triton" and package else ""
    return f"{PEER_NAMES[peer]} {version}".strip() + via


def _peer_values(report: dict[str, Any], peer: str, model: str, figure: str) -> dict[str, Any] | None:
    return report["results"].get(peer, {}).get(model, {}).get(figure)


def _missing(report: dict[str, Any], peer: str) -> str:
    failed = report.get("failures", {}).get(peer)
    return f"failed ({failed[0]['stage']})" if failed else "not measured"


def readme_peers(results: Results) -> str:
    report, peers = _peers(results)
    header = ("measured: the other server ÷ batchserve, same machine, SavedModel and load (KServe v2 gRPC)",
              "TF Serving", *(_peer_header(report, peer) for peer in peers))
    rows = []
    for model, figure, label, unit, reads in PEER_ROWS:
        cells = []
        for peer in peers:
            values = _peer_values(report, peer, model, figure)
            if values is None:
                cells.append(_missing(report, peer))
            elif reads == "share":
                cells.append(f"{values['peer_median']:.2f} (batchserve: {values['ours_median']:.2f})")
            else:
                cells.append(_ratio(values["median_ratio"]))
        note = {"higher": " (below 1: less)", "lower": " (above 1: slower)", "share": ", ÷ each server's capacity"}
        rows.append((f"{label}{note[reads]}", "not measured", *cells))
    return (_table(header, rows) + "\n\n"
            f"Medians of {report['rounds']} rounds, each server against batchserve in alternating blocks, measured "
            f"{report['started_at'][:10]} by `python -m benchmarks peers` on {machine_phrase(results)}; every "
            "round, each server's configuration and how they were installed are in "
            "[docs/benchmarks/peers-2core-cpu.json](docs/benchmarks/peers-2core-cpu.json), the method in "
            "[performance](docs/performance.md#against-other-servers). TF Serving's `tensorflow_model_server` "
            "is not on the package registry (it ships as a Docker image and a Debian package), so it is not "
            "measured here.")


def peers_detail(results: Results) -> str:
    report, peers = _peers(results)
    rows = []
    for peer in peers:
        for model, figure, label, unit, reads in PEER_ROWS:
            values = _peer_values(report, peer, model, figure)
            if values is None:
                rows.append((PEER_NAMES[peer], label, unit, "-", "-", _missing(report, peer)))
                continue
            digits = 2 if reads == "share" else 1
            spread = values.get("spread")
            rows.append((PEER_NAMES[peer], label, unit, f"{values['ours_median']:.{digits}f}",
                         f"{values['peer_median']:.{digits}f}",
                         f"{values['median_ratio']:.2f}" + (f" ({spread[0]:.2f}–{spread[1]:.2f})" if spread else "")))
    versions = "; ".join(
        f"{_peer_header(report, peer)}: "
        + ", ".join(f"{name} {version}"
                    for name, version in sorted(report["servers"][peer].get("packages", {}).items()))
        for peer in peers
    )
    return (f"Measured {report['started_at'][:10]} on {machine_phrase(results)}; the command took "
            f"{round(report['wall_seconds'] / 60)} minutes. {versions}. Each batchserve figure is from the blocks "
            "run against that server. In the goodput blocks the load runs, unmeasured, for one deadline before "
            "the measured window and one after it, so the queue is at its steady depth throughout the window."
            + "\n\n" + _table(("server", "figure", "unit", "batchserve", "the other server",
                              "other ÷ batchserve (rounds)"), rows, ("---", "---", "---", "---:", "---:", "---:")))


# ---- docs/performance.md ----

def machine(results: Results) -> str:
    m = results.suite["machine"]
    return (f"All figures below come from one run of `python -m benchmarks suite` on {results.suite['started'][:10]}, "
            f"on {machine_phrase(results)}, {m['memory_gib']:g} GiB of memory, Python {m['python']} and "
            f"TensorFlow {m['tensorflow']}. Load generator and server share the {m['cores']} cores; the run took "
            f"{round(results.suite['wall_s'] / 60)} minutes.")


def inception_levels(results: Results) -> str:
    limit = results.figures["in_process_limit_images_per_s"]
    rows = [
        (str(level["concurrency"]), f"{level['images_per_s']:.1f}", _ratio(level["images_per_s"] / limit),
         f"{level['p50_ms']:.0f}", f"{level['p99_ms']:.0f}", f"{level['mean_batch_size'] or 0:.1f}")
        for level in results.suite["batching_on"] if level["mode"] == "closed"
    ]
    seconds = results.suite["duration_s"]
    return (f"Inception-v3 over gRPC, batching on, one pass per level (closed loop, {seconds:g} s per level after a "
            f"warm-up); ÷ limit is against the in-process limit measured in the same run ({limit:.1f} images/s):\n\n"
            + _table(("clients", "images/s", "÷ limit", "p50 ms", "p99 ms", "mean batch"), rows,
                     ("---:",) * 6))


def headline(results: Results) -> str:
    f = results.figures
    throughput = results.comparison("inprocess_best_vs_server_c32_images_per_s")
    gain = results.comparison("batching_off_vs_on_c64_images_per_s")
    lone = results.comparison("inprocess_batch1_vs_lone_server_request_ms")
    rows = [
        (f"throughput at 32 clients ÷ in-process limit, interleaved ({throughput['rounds']} rounds)",
         f"{_ratio(f['inception_c32_over_in_process'], 3)} (rounds {_spread(throughput, 3)})"),
        (f"a lone request's p50 over the in-process batch-1 call, {lone['rounds']} pairs",
         f"+{f['lone_request_p50_minus_in_process_ms']:.1f} ms ({_ms(f['lone_request_p50_ms'])} in all)"),
        (f"batching on ÷ off at 64 clients, interleaved ({gain['rounds']} rounds)",
         f"{_ratio(f['batching_on_over_off_c64'])} (rounds {_spread(gain)})"),
    ]
    if "bf16_server_over_fp32_in_process" in f:
        rows.append(("bf16 export through the server at 32 clients ÷ fp32 in-process limit",
                     f"{_ratio(f['bf16_server_over_fp32_in_process'])} (bf16 in-process: "
                     f"{_ratio(f['bf16_in_process_over_fp32_in_process'])})"))
    rows += [
        ("trivial model, 64 clients: this server ÷ a bare grpc.aio server with a numpy model",
         _ratio(f["trivial_c64_ours_over_floor"])),
        ("trivial model, 1 client, p50",
         f"{_ms(f['trivial_c1_p50_ms'])} (the bare server: {_ms(f['trivial_c1_p50_floor_ms'])})"),
        ("10× overload with `--max_inflight_requests=64`: p99 of accepted requests",
         f"{_seconds(f['overload_accepted_p99_s'])}, against the {_seconds(f['overload_bound_s'])} that 64 + 16 "
         "images take at the in-process limit"),
        ("10× overload: p99 of refusals (`RESOURCE_EXHAUSTED`)", _ms(f["overload_refusal_p99_ms"])),
    ]
    return _table(("measure", "result"), rows)


def rest(results: Results) -> str:
    f = results.figures
    trivial = results.comparison("grpc_vs_rest_trivial_c64_requests_per_s")
    inception = results.comparison("inprocess_best_vs_rest_c32_images_per_s")
    rows = [
        (f"trivial model, 64 clients: REST requests/s ÷ gRPC requests/s, interleaved ({trivial['rounds']} rounds)",
         f"{_ratio(f['grpc_vs_rest_trivial_c64'])} (rounds {_spread(trivial)})"),
        (f"Inception-v3, 32 clients, base64 JPEGs in JSON: REST ÷ in-process limit, interleaved "
         f"({inception['rounds']} rounds)",
         f"{_ratio(f['rest_inception_c32_over_in_process'], 3)} (rounds {_spread(inception, 3)}; gRPC, same run: "
         f"{_ratio(f['inception_c32_over_in_process'], 3)})"),
    ]
    return _table(("measure", "result"), rows)


def kserve_http(results: Results) -> str:
    f = results.figures
    binary = results.comparison("kserve_grpc_vs_kserve_http_trivial_c64_requests_per_s")
    as_json = results.comparison("rest_vs_kserve_http_json_trivial_c64_requests_per_s")
    rows = [
        (f"KServe v2 HTTP with binary tensors ÷ KServe v2 gRPC, requests/s ({binary['rounds']} rounds)",
         f"{_ratio(f['kserve_grpc_vs_kserve_http_trivial_c64'])} (rounds {_spread(binary)})"),
        (f"KServe v2 HTTP with JSON tensors ÷ TF Serving REST (JSON), requests/s ({as_json['rounds']} rounds)",
         f"{_ratio(f['rest_vs_kserve_http_json_trivial_c64'])} (rounds {_spread(as_json)})"),
    ]
    return _table(("measure", "result"), rows)


def json_parsing(results: Results) -> str:
    parsing = results.suite["json_parsing"]
    small, large = parsing["trivial_request"], parsing["batch_of_128"]
    return (f"REST bodies are parsed with orjson, falling back to Python's parser only for what orjson refuses "
            f"(`NaN`, numbers beyond a double). On the trivial model's {small['body_bytes'] / 1e3:.0f} KB bodies "
            "orjson "
            f"takes {_ms(small['orjson_ms'])} against Python's {_ms(small['python_json_ms'])} "
            f"({small['python_over_orjson']:.1f}× faster); on an {large['body_bytes'] / 1e6:.0f} MB body of 128 such "
            f"images, {_ms(large['orjson_ms'])} against {_ms(large['python_json_ms'])} "
            f"({large['python_over_orjson']:.1f}×), where building the Python lists of numbers dominates. A body "
            f"holds Python's interpreter while it is parsed, {large['orjson_ms_per_mb']:.0f} ms per MB for such a "
            "body, which is that long taken from every other request on the server: send large tensors over gRPC "
            "or KServe's binary tensors, where they travel as packed bytes.")


def auto_batch_size(results: Results) -> str:
    auto = results.suite.get("auto_batch_size")
    if not auto:
        return "Not measured in this run."
    sizes = sorted({int(size) for start in auto["starts"] for size in start["curve_items_per_s"]})
    curve_rows = [
        (f"start {index + 1}",
         *(f"{start['curve_items_per_s'][str(size)]:.1f}" if str(size) in start["curve_items_per_s"] else "-"
           for size in sizes),
         str(start["chosen"]))
        for index, start in enumerate(auto["starts"])
    ]
    curve = _table(("images/s at batch size", *map(str, sizes), "chosen"), curve_rows,
                   ("---",) + ("---:",) * (len(sizes) + 1))
    best = auto["best_fixed"]
    pooled = auto["auto_over_best_fixed_all_rounds"]
    control, same_size = auto["same_size_control"], auto["control_over_same_size_all_rounds"]
    served_rows = [
        (f"start {index + 1}", str(start["chosen"]),
         *(_ratio_with_rounds(start["auto_over_fixed"][str(size)]) for size in auto["fixed_sizes"]),
         _ratio_with_rounds(start["control_over_same_size"]))
        for index, start in enumerate(auto["starts"])
    ]
    columns = ("", "auto chose", *(f"auto ÷ fixed {size} (rounds)" for size in auto["fixed_sizes"]),
               f"a second fixed {control} ÷ fixed {control} (rounds)")
    served = _table(columns, served_rows, ("---",) + ("---:",) * (len(columns) - 1))
    others = " and ".join(str(size) for size in auto["fixed_sizes"] if size != best)
    return (f"With `--max_batch_size=auto` the server times the model at batch sizes 1, 2, 4, … 128 while it "
            f"warms up. The suite started it {len(auto['starts'])} times; each start timed, in images per second:\n\n"
            f"{curve}\n\nServed at {auto['concurrency']} clients against the same model with fixed sizes, in "
            f"alternating blocks of {auto['block_s']:g} s ({auto['rounds_per_start']} rounds per start, ABBA), median "
            f"of the per-round ratios:\n\n{served}\n\n"
            "Each start started its fixed servers afresh too, launching the servers in an order rotated from start "
            "to start (two servers of one configuration can differ by a percent or two for as long as they run, so "
            "no side is always the one launched first), and gave every server one unmeasured block first, since a "
            "new server runs slower over its first blocks. "
            f"The better fixed size is judged over all {pooled['rounds']} rounds: "
            f"against each round's auto, fixed {best} did better than fixed {others}. "
            f"Auto delivered {pooled['median_ratio']:.3f} of fixed {best} over those rounds "
            f"({pooled['min']:.3f}–{pooled['max']:.3f}). Two servers with the same "
            f"fixed {control}, in the same rounds, differed by {same_size['median_ratio']:.3f} "
            f"({same_size['min']:.3f}–{same_size['max']:.3f}): "
            "that is how far apart two identical configurations read here.")


def _ratio_with_rounds(ratio: dict[str, Any]) -> str:
    return f"{ratio['median_ratio']:.3f} ({min(ratio['ratios']):.3f}–{max(ratio['ratios']):.3f})"


def goodput(results: Results) -> str:
    report = results.suite["goodput_under_deadlines"]
    rows = []
    for each in CASES:
        case = _goodput_case(results, each)
        load, batches = f"{each.load:g}", f"{each.deadline_batches:g}"
        rows.append((f"{load}×", f"{batches} batch times ({_seconds(case['after']['deadline_ms'] / 1000)})",
                     _ratio(case["before"]["goodput_over_capacity"]),
                     _ratio(case["after"]["goodput_over_capacity"]),
                     _ms(case["after"]["refused_median_ms"])))
    return (f"Capacity first ({report['capacity_requests_per_s']:.1f} requests/s at 32 clients), then an open loop "
            "at 2× and 10× capacity, every request with a gRPC deadline of 2 or 5 batch times. Goodput is the "
            "answers that arrived within their deadline, per second, ÷ capacity. "
            + _goodput_window(report) + "\n\n"
            + _table(("load", "deadline", "goodput, queue and expire", "goodput, deadline-aware",
                      "deadline-aware: refusals answered in (median)"), rows, ("---", "---", "---:", "---:", "---:")))


# ---- docs/batching.md ----

def auto_batch_example(results: Results) -> str:
    auto = results.suite.get("auto_batch_size")
    if not auto:
        return "Not measured in this run."
    start = auto["starts"][0]
    curve = {int(size): value for size, value in start["curve_items_per_s"].items()}
    best = max(curve.values())
    ties = sorted(size for size, value in curve.items() if value >= best * 0.97)
    points = ", ".join(f"{value:.1f} at {size}" for size, value in curve.items())
    return (f"For example, on {machine_phrase(results)} serving Inception-v3, the measured curve was {points} "
            f"(images/s at each batch size). Sizes {', '.join(map(str, ties))} are within 3% of the best, so the "
            f"server chose {start['chosen']}. Served at {auto['concurrency']} clients, that choice delivered "
            f"{start['auto_over_best_fixed']:.3f} of fixed {auto['best_fixed']}, the better of fixed "
            f"{' and '.join(map(str, auto['fixed_sizes']))} over the run "
            f"([performance](performance.md#batch-size-chosen-by-measurement) has every start).")


def goodput_detail(results: Results) -> str:
    report = results.suite["goodput_under_deadlines"]
    rows = []
    late = []
    for each in CASES:
        case = _goodput_case(results, each)
        load, batches = f"{each.load:g}", f"{each.deadline_batches:g}"
        before, after = case["before"], case["after"]
        rows.append((f"{load}× capacity", f"{batches} batch times ({after['deadline_ms']:.0f} ms)",
                     f"{before['goodput_over_capacity']:.0%}", f"{after['goodput_over_capacity']:.0%}",
                     _ms(after["refused_median_ms"]), _ms(after["accepted_p99_ms"])))
        if after["accepted_but_late"]:
            accepted = after["answered_in_time"] + after["accepted_but_late"]
            late.append(f"{after['accepted_but_late']} of {accepted} accepted requests finished late at {load}× "
                        f"load with {batches}-batch deadlines")
    late_text = ("; ".join(late) + "." if late else "every accepted request finished within its deadline.")
    return (f"Measured on {machine_phrase(results)} serving Inception-v3 (`max_batch_size` 16, one batch "
            f"thread, one JPEG per request) by `python -m benchmarks suite` (its goodput part alone: "
            f"`python -m benchmarks goodput`). Two servers run side by side, one with "
            f"`--refuse_unmeetable_deadlines=false`. Capacity is measured first with 32 clients in a closed loop: "
            f"{report['capacity_requests_per_s']:.1f} requests/s, batches of {report['server_mean_batch_size']:.1f} "
            f"images every {_seconds(report['batch_seconds'])}. Each case then sends an open-loop load at a multiple "
            "of capacity, every request with a deadline of a few batch times. Goodput is the answers that arrive "
            "within their deadline, per second, as a fraction of capacity. "
            + _goodput_window(report) + "\n\n"
            + _table(("load", "deadline", "goodput, queue and expire", "goodput, refuse unmeetable",
                      "refusals answered in (median)", "accepted requests' p99"), rows)
            + f"\n\nWith refusals, accepted requests whose deadline passed anyway: {late_text}")


RENDERERS: dict[str, Callable[[Results], str]] = {
    "readme-performance": readme_performance,
    "readme-peers": readme_peers,
    "peers": peers_detail,
    "machine": machine,
    "inception-levels": inception_levels,
    "headline": headline,
    "rest": rest,
    "kserve-http": kserve_http,
    "json-parsing": json_parsing,
    "auto-batch-size": auto_batch_size,
    "goodput": goodput,
    "auto-batch-example": auto_batch_example,
    "goodput-detail": goodput_detail,
}


def _wrap(markdown: str, width: int = 110) -> str:
    """Prose paragraphs wrapped as the pages' hand-written ones are; tables left whole."""
    paragraphs = markdown.strip().split("\n\n")
    return "\n\n".join(
        paragraph if paragraph.startswith("|") else
        textwrap.fill(paragraph, width, break_long_words=False, break_on_hyphens=False)
        for paragraph in paragraphs
    )


def render_page(text: str, results: Results) -> str:
    """The page with every marked passage rendered from `results`; an unknown NAME is an error."""

    def one(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise KeyError(f"no renderer for figures:{name}")
        return f"<!-- figures:{name}:start -->\n{_wrap(RENDERERS[name](results))}\n<!-- figures:{name}:end -->"

    rendered = _BLOCK.sub(one, text)
    unmatched = _ANY_MARKER.findall(_BLOCK.sub("", rendered))
    if unmatched:
        raise ValueError(f"unpaired figure markers: {unmatched}")
    return rendered


def publish_pages(root: Path) -> list[str]:
    """Rewrite the pages whose figures differ from the stored results; the ones rewritten."""
    results = Results.load(root)
    changed = []
    for page in PAGES:
        path = root / page
        text = path.read_text()
        rendered = render_page(text, results)
        if rendered != text:
            path.write_text(rendered)
            changed.append(page)
    return changed


def check_pages(root: Path) -> list[str]:
    """The pages whose figures differ from what the stored results render."""
    results = Results.load(root)
    return [page for page in PAGES if render_page((root / page).read_text(), results) != (root / page).read_text()]


# A measured figure: a speed, a latency, a ratio, a speed-up or a share. Outside the marked passages a page may
# state settings and examples (code, flags, load multiples such as 2× capacity, illustrations), but no result.
_MEASURED = re.compile(
    r"\d[\d.,]*\s*(images/s|requests/s|req/s|img/s)\b"  # throughput
    r"|\b\d+(\.\d+)?\s*(ms|µs)\b"  # latency
    r"|\b\d+\.\d+×|\b\d+(\.\d+)?×\s*(faster|slower)"  # a speed-up (not 32×32 dimensions, not 2× load)
    r"|\b[01]\.\d{2,3}\b(?!\s*(GB|MB|KB|GiB|MiB|s\b))"  # a ratio (not a size or a duration)
    r"|\b\d+(\.\d+)?\s*%"  # a share
)
# Settings, not results: the batch-size rule's tie margin, the deadline headroom's default, the download's
# progress lines, and the batch timeout TF Serving's guide advises trying.
_SETTINGS = re.compile(r"within 3% of the best|a 3% difference|\(10% by default\)|a line every 10%|trying 1 to 10 ms")
_FENCED = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`]*`")
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def stray_figures(text: str) -> list[str]:
    """Lines outside marked passages, code and HTML comments that state something like a measurement."""
    for pattern in (_BLOCK, _FENCED, _CODE_SPAN, _COMMENT, _SETTINGS):
        text = pattern.sub("", text)
    return [line for line in text.splitlines() if _MEASURED.search(line)]
