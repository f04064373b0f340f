"""Every figure on the README and the docs is the one in the stored results, and no page states one of its own.

The pages' measured passages are rendered from docs/benchmarks/*.json by benchmarks/publish.py; these tests
render them again and compare, and scan the rest of each page for anything that reads like a measurement.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path

import pytest

from benchmarks.cli import build_parser, main
from benchmarks.publish import PAGES, PUBLISHED_SUITE, RENDERERS, SCANNED_PAGES, Results, render_page, stray_figures

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results() -> Results:
    return Results.load(ROOT)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_shows_the_figures_its_stored_results_render(page, results):
    text = (ROOT / page).read_text()
    assert render_page(text, results) == text, f"{page} differs from its data: run python -m benchmarks publish"


@pytest.mark.parametrize("page", SCANNED_PAGES)
def test_no_page_states_a_measured_figure_outside_its_rendered_passages(page):
    assert stray_figures((ROOT / page).read_text()) == []


def test_every_renderer_has_a_place_on_a_page():
    text = "".join((ROOT / page).read_text() for page in PAGES)
    assert {name for name in RENDERERS if f"<!-- figures:{name}:start -->" not in text} == set()


def test_a_new_result_changes_the_page(results):
    """The page is bound to the data: a different stored figure renders a different page."""
    page = (ROOT / "docs/performance.md").read_text()
    changed = copy.deepcopy(results.suite)
    changed["figures"]["batching_on_over_off_c64"] = 9.87
    rendered = render_page(page, Results(suite=changed, peers=results.peers))
    assert "9.87" in rendered and "9.87" not in page


def test_the_auto_batch_passage_shows_the_same_configuration_spread_when_measured(results):
    page = (ROOT / "docs/performance.md").read_text()
    changed = copy.deepcopy(results.suite)
    auto = changed["auto_batch_size"]
    auto["same_size_control"] = auto["fixed_sizes"][0]
    for start in auto["starts"]:
        start["control_over_same_size"] = {"ratios": [0.981, 1.012], "median_ratio": 0.996}
    auto["control_over_same_size_all_rounds"] = {"rounds": 10, "median_ratio": 0.996, "min": 0.981, "max": 1.012}
    rendered = render_page(page, Results(suite=changed, peers=results.peers))
    size = auto["fixed_sizes"][0]
    assert f"| a second fixed {size} ÷ fixed {size} (rounds) |" in rendered
    assert "| 0.996 (0.981–1.012) |" in rendered
    prose = " ".join(rendered.split())  # the renderer wraps lines wherever the figures fall
    assert f"Two servers with the same fixed {size}, in the same rounds, differed by 0.996 (0.981–1.012)" in prose
    assert "launching the servers in an order rotated from start to start" in prose


def test_the_scan_finds_figures_and_leaves_settings_alone():
    planted = [
        "The server sustains 33.8 images/s here.",
        "a lone request costs 1.7 ms more",
        "orjson is 8× faster",
        "throughput ratio 0.965 in five rounds",
        "goodput reached 95% of capacity",
    ]
    assert stray_figures("\n".join(planted)) == planted
    settings = "\n".join([
        "a 32×32×3 float input",
        "flags such as `--batch_timeout_micros=1000` or `max_batch_time 5 ms`",
        "```sh\nrun --rate 10.5 # 12 ms\n```",
        "<!-- figures:machine:start -->\n0.99 and 5 ms\n<!-- figures:machine:end -->",
    ])
    assert stray_figures(settings) == []


def test_publish_check_passes_on_the_committed_pages():
    assert main(["publish", "--check"]) == 0


_PROCESS_WORDS = re.compile(r"\bgoals?\s*\d|\bissues?\s*#?\d|ISSUE_|\bsessions?\b\s*\d", re.I)


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in _keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in _keys(item)}
    return set()


def test_results_and_help_speak_of_the_server_not_of_how_it_is_developed():
    for path in sorted((ROOT / "docs/benchmarks").glob("*.json")):
        report = json.loads(path.read_text())
        assert not _keys(report) & {"goals", "goal", "met", "target"}, path.name
        assert not _PROCESS_WORDS.search(path.read_text()), path.name
    parser = build_parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    helps = [parser.format_help(), *(sub.format_help() for sub in commands.choices.values())]
    for text in helps:
        assert text and not re.search(r"\bgoals?\b|\bissues?\b", text, re.I), text
    for page in ("README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))):
        assert not _PROCESS_WORDS.search((ROOT / page).read_text()), page


def test_the_stored_suite_names_its_machine(results):
    machine = results.suite["machine"]
    assert machine["cores"] and machine["cpu"] and machine["tensorflow"]
    assert (ROOT / PUBLISHED_SUITE).is_file()
