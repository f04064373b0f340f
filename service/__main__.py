"""`python -m service`: serve a model with tensorflow_model_server's flags."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported


def main(argv: list[str] | None = None) -> int:
    from .logs import configure_logging
    from .settings import load_settings

    settings = load_settings(argv)
    configure_logging(settings.log_level, settings.log_format, sys.stderr)
    if settings.flags_without_effect:
        import logging

        for name in settings.flags_without_effect:
            logging.getLogger("service").warning("--%s is accepted for compatibility but has no effect here", name)
    import uvloop

    from .server import run_server

    return uvloop.run(run_server(settings))


if __name__ == "__main__":
    sys.exit(main())
