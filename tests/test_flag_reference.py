"""docs/operations.md's flag reference is generated from the server's argument parser (scripts/flag_reference.py)
and must stay in step with it: every flag documented once, with the default the server really uses."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest

from service.process.settings import build_argument_parser, describe_default, flag_defaults, load_settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "flag_reference.py"
FIX = "run `python scripts/flag_reference.py --write` and commit docs/operations.md"


def _load_script():
    spec = importlib.util.spec_from_file_location("flag_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flag_reference = _load_script()


def parser_flags() -> list[str]:
    return [
        next(option for option in action.option_strings if option.startswith("--"))
        for action in build_argument_parser()._actions
        if action.option_strings and action.dest != "help"
    ]


def documented_flags(region: str) -> Counter[str]:
    """Flags the reference documents: a table row's first cell, or a flag listed in a paragraph. Flags named
    inside a row's meaning are mentions, not entries."""
    entries: Counter[str] = Counter()
    for line in region.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1].strip()
            entries.update(re.findall(r"^`(--[a-z0-9_]+)`$", first_cell))
        elif line and not line.startswith(("#", "<!--")):
            entries.update(re.findall(r"`(--[a-z0-9_]+)`", line))
    return entries


def test_the_reference_in_the_docs_is_the_rendering_of_the_parser():
    document = flag_reference.DOC.read_text(encoding="utf-8")
    assert flag_reference.region(document) == flag_reference.expected_region(), (
        f"docs/operations.md's flag reference differs from the server's argument parser: {FIX}"
    )


def test_every_flag_of_the_parser_is_documented_exactly_once():
    region = flag_reference.region(flag_reference.DOC.read_text(encoding="utf-8"))
    entries = documented_flags(region)
    flags = parser_flags()
    assert len(flags) == len(set(flags))
    missing = sorted(set(flags) - set(entries))
    repeated = sorted(flag for flag, count in entries.items() if count > 1)
    unknown = sorted(set(entries) - set(flags))
    assert not missing, f"flags missing from the reference: {missing}; {FIX}"
    assert not repeated, f"flags documented more than once: {repeated}"
    assert not unknown, f"the reference documents flags the server does not have: {unknown}; {FIX}"


def test_the_documented_defaults_are_what_the_server_runs_with():
    """flag_defaults (the default column, and --help) against the settings load_settings builds from nothing."""
    settings = load_settings([], environ={})
    defaults = flag_defaults()
    for action in build_argument_parser()._actions:
        name = action.dest
        if not action.option_strings or name not in defaults or name in ("batching_parameters_file",
                                                                         "monitoring_config_file"):
            continue
        actual = getattr(settings.batching if hasattr(settings.batching, name) else settings, name)
        assert actual == defaults[name], f"--{name}: documented default {defaults[name]!r}, runs with {actual!r}"


def test_every_flag_has_help_and_a_group():
    flag_reference.render()  # raises, naming the flag, for one in no group or without a default or help
    for action in build_argument_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings[0]} has no help text"


def test_help_shows_the_effective_defaults():
    text = " ".join(build_argument_parser().format_help().split())  # unwrapped
    assert "(default: 8500)" in text and "(default: 2147483647)" in text and "(default: serve)" in text
    assert "of sizes within 3% of the best, the largest" in text  # a literal % survives argparse's formatting


@pytest.mark.parametrize(
    "value, shown",
    [(None, "none"), ((), "none"), ("", "none"), (True, "true"), (0.1, "0.1"), (60.0, "60"), (1024, "1024"),
     (64 * 1024 * 1024, "67108864 (64 MiB)"), (("serve", "gpu"), "serve,gpu"), (Path("/models/x"), "/models/x")],
)
def test_defaults_are_described_as_people_read_them(value, shown):
    assert describe_default(value) == shown


def test_help_text_becomes_markdown():
    assert flag_reference.markdown("see --max_batch_size=auto, then RESOURCE_EXHAUSTED") == (
        "see `--max_batch_size=auto`, then `RESOURCE_EXHAUSTED`"
    )
    assert flag_reference.markdown("TF Serving's 'a|b' and the model's '<name>'") == (
        "TF Serving's `a\\|b` and the model's `<name>`"
    )
    assert flag_reference.markdown("<b> * x") == "&lt;b> \\* x"


def test_check_fails_on_a_stale_reference_and_write_fixes_it(tmp_path: Path, capsys):
    doc = tmp_path / "operations.md"
    doc.write_text(f"# Operations\n\n{flag_reference.START}\nstale\n{flag_reference.END}\n\nAfter.\n", encoding="utf-8")
    assert flag_reference.main(["--check"], doc=doc) == 1
    assert "--write" in capsys.readouterr().err
    assert flag_reference.main(["--write"], doc=doc) == 0
    assert flag_reference.main(["--check"], doc=doc) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Operations\n\n") and text.endswith(f"{flag_reference.END}\n\nAfter.\n")


def test_markers_must_be_there_once_each():
    with pytest.raises(ValueError):
        flag_reference.region("no markers")
    with pytest.raises(ValueError):
        flag_reference.region(f"{flag_reference.END}{flag_reference.START}")
