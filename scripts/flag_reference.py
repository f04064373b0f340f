"""Render the flag reference of docs/operations.md from the server's argument parser.

    python scripts/flag_reference.py            # print the reference
    python scripts/flag_reference.py --write    # rewrite it in docs/operations.md, between the markers
    python scripts/flag_reference.py --check    # exit 1 if docs/operations.md's copy differs

One table per argument group of `service.settings.build_argument_parser()`, one row per flag: its name, the
value the server uses when nothing sets it (`service.settings.flag_defaults`, the settings' own defaults) and
its help text. `tensorflow_model_server` flags accepted without effect are listed after their group's table.
Help texts are plain text for `--help`; here 'single-quoted' text, --flags and STATUS_CODES become code.
tests/test_flag_reference.py fails when the docs and the parser disagree.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.process.settings import (  # noqa: E402
    TF_SERVING_FLAGS_REFUSED,
    PrintVersionAction,
    TF_SERVING_FLAGS_WITHOUT_EFFECT,
    build_argument_parser,
    describe_default,
    flag_defaults,
)

DOC = ROOT / "docs" / "operations.md"
START = "<!-- flag-reference:start -->"
END = "<!-- flag-reference:end -->"
NOTICE = (
    "<!-- Generated from service/process/settings.py by scripts/flag_reference.py: edit the help texts there, then run "
    "`python scripts/flag_reference.py --write`. -->"
)

# 'literal text' (an apostrophe inside a word, as in "TF Serving's", opens nothing).
_QUOTED = re.compile(r"(?<![\w'])'([^'\s][^']*?)'(?![\w'])")
_SINGLE_WORD_CODES = (
    "UNAVAILABLE", "INTERNAL", "UNKNOWN", "CANCELLED", "ABORTED", "UNIMPLEMENTED", "UNAUTHENTICATED",
    "DEBUG", "INFO", "WARNING", "ERROR",
)
_CODE_WORDS = re.compile(
    r"--[a-z][a-z0-9_]*(?:=[A-Za-z0-9_.]*[A-Za-z0-9_])?"  # a flag, maybe with its value
    r"|\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"  # RESOURCE_EXHAUSTED, NOT_SERVING, BATCHSERVE_ADMIN_HEADER
    rf"|\b(?:{'|'.join(_SINGLE_WORD_CODES)})\b"
)


def _code(text: str) -> str:
    return f"`{text}`".replace("|", "\\|")


def _plain(text: str) -> str:
    """Markdown for plain text: flags and status codes as code, the rest escaped."""
    out, position = [], 0
    for match in _CODE_WORDS.finditer(text):
        out.append(_escape(text[position:match.start()]))
        out.append(_code(match.group()))
        position = match.end()
    out.append(_escape(text[position:]))
    return "".join(out)


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("`", "\\`")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def markdown(help_text: str) -> str:
    """A help text as markdown (see the module docstring)."""
    out, position = [], 0
    for match in _QUOTED.finditer(help_text):
        out.append(_plain(help_text[position:match.start()]))
        out.append(_code(match.group(1)))
        position = match.end()
    out.append(_plain(help_text[position:]))
    return "".join(out)


def _flag(action: argparse.Action) -> str:
    return next(option for option in action.option_strings if option.startswith("--"))


def _default_cell(value: object) -> str:
    text = describe_default(value)
    if text == "none" or isinstance(value, (bool, int, float)):
        return text
    return _code(text)


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference: for each argument group, a heading, its description, a table, the flags without effect."""
    parser = parser or build_argument_parser()
    defaults = flag_defaults()
    lines = [NOTICE]
    for group in parser._action_groups:  # argparse has no public accessor for its groups
        actions = [action for action in group._group_actions if action.option_strings and action.dest != "help"]
        if not actions:
            continue
        if group.title in ("options", "optional arguments"):
            raise ValueError(
                f"{', '.join(_flag(action) for action in actions)}: in no argument group; add each to one in "
                "service.settings.build_argument_parser"
            )
        lines += ["", f"### {group.title}", ""]
        if group.description:
            lines += [markdown(group.description), ""]
        rows, without_effect = [], []
        for action in actions:
            help_text = (action.help or "").replace("%%", "%")
            if action.dest in TF_SERVING_FLAGS_WITHOUT_EFFECT:
                without_effect.append(_code(_flag(action)))
                continue
            if action.dest in TF_SERVING_FLAGS_REFUSED:  # TF Serving's default, as the flag's text: "false", ""
                tf_default = TF_SERVING_FLAGS_REFUSED[action.dest][0]
                default = _default_cell({"false": False, "true": True}.get(tf_default, tf_default))
            elif isinstance(action, PrintVersionAction):  # prints and exits: nothing to default
                default = _default_cell(False)
            elif action.dest in defaults:
                default = _default_cell(defaults[action.dest])
            else:
                raise ValueError(f"{_flag(action)}: no default known; add it to service.settings.flag_defaults")
            if not help_text:
                raise ValueError(f"{_flag(action)}: no help text; give it one in service.settings.build_argument_parser")
            rows.append(f"| {_code(_flag(action))} | {default} | {markdown(help_text)} |")
        if rows:
            lines += ["| flag | default | meaning |", "|---|---|---|", *rows]
        if without_effect:
            if rows:
                lines.append("")
            lines.append(f"Without effect here, each logging one warning at start-up: {', '.join(without_effect)}.")
    return "\n".join(lines) + "\n"


def region(document: str) -> str:
    """The text between the markers (one of each, start first)."""
    if document.count(START) != 1 or document.count(END) != 1 or document.index(START) > document.index(END):
        raise ValueError(f"expected one {START} followed by one {END}")
    return document[document.index(START) + len(START):document.index(END)]


def with_region(document: str, content: str) -> str:
    region(document)  # validates the markers
    return document[:document.index(START) + len(START)] + content + document[document.index(END):]


def expected_region() -> str:
    return "\n" + render() + "\n"


def main(argv: list[str] | None = None, doc: Path = DOC) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"rewrite the reference in {doc.name}")
    action.add_argument("--check", action="store_true", help=f"exit 1 if {doc.name}'s reference is out of date")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(render())
        return 0
    document = doc.read_text(encoding="utf-8")
    expected = expected_region()
    if region(document) == expected:
        return 0
    if args.check:
        print(f"{doc}: the flag reference is out of date; run `python scripts/flag_reference.py --write`",
              file=sys.stderr)
        return 1
    doc.write_text(with_region(document, expected), encoding="utf-8")
    print(f"{doc}: flag reference rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
