"""Writes the image's pip requirements from pyproject.toml, with the TensorFlow distribution the image wants.

`tensorflow-serving-api` declares a dependency on the `tensorflow` distribution, which pip would install next
to `tensorflow-cpu` (two copies of TensorFlow, ~600 MB more, the same `tensorflow` package directory written
twice). Its only Python dependencies besides TensorFlow are grpcio and protobuf, already our own runtime
dependencies. So the image installs, from the same pins as pyproject.toml:

- `requirements.txt`: every runtime dependency, `tensorflow` replaced by the distribution asked for
  (`tensorflow-cpu`, or `tensorflow[and-cuda]`), without `tensorflow-serving-api`;
- `no-deps.txt`: `tensorflow-serving-api`, installed with `pip install --no-deps` (its generated protos only).

Usage: python requirements.py PYPROJECT OUTPUT_DIR TENSORFLOW_DISTRIBUTION
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?")
NO_DEPS = {"tensorflow-serving-api"}


def split_requirements(pyproject: Path, tensorflow_distribution: str) -> tuple[list[str], list[str]]:
    """(requirements, no-deps requirements); the `tensorflow` pin is kept, under the distribution's name."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    regular, no_deps = [], []
    for requirement in dependencies:
        match = _NAME.match(requirement)
        if match is None:
            raise ValueError(f"cannot read requirement {requirement!r}")
        name = match.group(1).lower().replace("_", "-")
        if name == "tensorflow":
            regular.append(tensorflow_distribution + requirement[match.end():])
        elif name in NO_DEPS:
            no_deps.append(requirement)
        else:
            regular.append(requirement)
    return regular, no_deps


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pyproject, output, distribution = Path(argv[0]), Path(argv[1]), argv[2]
    regular, no_deps = split_requirements(pyproject, distribution)
    output.mkdir(parents=True, exist_ok=True)
    (output / "requirements.txt").write_text("\n".join(regular) + "\n", encoding="utf-8")
    (output / "no-deps.txt").write_text("\n".join(no_deps) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
