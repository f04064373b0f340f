"""`python -m service`: serve a model with tensorflow_model_server's flags."""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported


def main(argv: list[str] | None = None) -> int:
    from .settings import load_settings

    settings = load_settings(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import uvloop

    from .server import run_server

    return uvloop.run(run_server(settings))


if __name__ == "__main__":
    sys.exit(main())
