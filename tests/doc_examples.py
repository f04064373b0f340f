"""The fenced code blocks of README.md and docs/*.md, and the shell-command splitting test_doc_examples.py uses.

Every block carries one of LANGUAGES as its tag: python (a complete script), sh (commands, one per line),
text (output, diagrams: not executed), yaml, json, textproto (must parse).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES = ("python", "sh", "text", "yaml", "json", "textproto")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    index: int  # 1-based, in order of appearance in the file
    line: int  # line of the opening fence
    language: str | None  # the first word of the info string; None when the fence has none
    text: str
    closed: bool = True

    @property
    def id(self) -> str:
        return f"{self.path}#{self.index}-{self.language or 'untagged'}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def extract_blocks(text: str, path: str) -> list[Block]:
    """Fenced blocks (``` or ~~~, any indentation, closed by a fence of the same kind at least as long)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        indent, fence, info = len(match["indent"]), match["fence"], match["info"].strip()
        start, body, closed = i + 1, [], False
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                closed = True
                break
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip())):])
            i += 1
        i += 1
        language = info.split()[0] if info else None
        blocks.append(Block(path, len(blocks) + 1, start, language, "\n".join(body) + "\n", closed))
    return blocks


def discover_blocks(root: Path) -> list[Block]:
    blocks: list[Block] = []
    for file in doc_files(root):
        if file.exists():
            blocks.extend(extract_blocks(file.read_text(encoding="utf-8"), file.relative_to(root).as_posix()))
    return blocks


@dataclass(frozen=True)
class ShellCommand:
    line: int  # line in the documentation file where the command starts
    text: str  # as written, continuations joined, comment dropped
    error: str | None = None  # why it cannot be checked (a pipeline, unbalanced quotes)
    tokens: tuple[str, ...] = field(default=())

    def split_assignments(self) -> tuple[dict[str, str], list[str]]:
        """Leading VAR=value words (the command's environment) and the words after them."""
        env: dict[str, str] = {}
        words = list(self.tokens)
        while words and _ASSIGNMENT.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        return env, words


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # that starts a word, outside quotes)."""
    quote = None
    escaped = False
    for position, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1] in " \t"):
            return line[:position]
    return line


def _split_sequence(text: str) -> tuple[list[str], str | None]:
    """Split `a && b ; c` at top level (outside quotes and $(...)); pipes, || and & are refused."""
    parts: list[str] = []
    current: list[str] = []
    quote = None
    depth = 0
    i = 0
    while i < len(text):
        char = text[i]
        pair = text[i : i + 2]
        if char == "\\" and quote != "'" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif pair == "$(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0 and (pair == "&&" or char == ";"):
            parts.append("".join(current))
            current = []
            i += 2 if pair == "&&" else 1
            continue
        elif depth == 0 and char in "|&":
            return [], f"`{char}` (pipelines, `||` and background jobs are not checked: one command per line)"
        current.append(char)
        i += 1
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()], None


def shell_commands(block: Block) -> list[ShellCommand]:
    """The commands of an sh block: continuations joined, comments and blank lines dropped, `&&`/`;` split."""
    commands: list[ShellCommand] = []
    pending: list[str] = []
    first_line = 0
    for offset, raw in enumerate(block.text.splitlines()):
        line = _strip_comment(raw).rstrip()
        if not pending:
            first_line = block.line + 1 + offset
        continued = line.endswith("\\") and not line.endswith("\\\\")
        pending.append(line[:-1] if continued else line)
        if continued:
            continue
        text = " ".join(part.strip() for part in pending).strip()
        pending = []
        if not text:
            continue
        parts, error = _split_sequence(text)
        if error:
            commands.append(ShellCommand(first_line, text, error))
            continue
        for part in parts:
            try:
                tokens = tuple(shlex.split(part))
            except ValueError as problem:
                commands.append(ShellCommand(first_line, part, f"cannot split into words: {problem}"))
                continue
            commands.append(ShellCommand(first_line, part, None, tokens))
    if pending:
        commands.append(ShellCommand(first_line, " ".join(pending), "the last line ends with a backslash"))
    return commands


def expand_variables(word: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from the block's own assignments; others are left as written."""
    return _VARIABLE.sub(lambda m: env.get(m[1] or m[2], m[0]), word)
