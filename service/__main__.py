"""`python -m service`: serve a model with tensorflow_model_server's flags.

A server that cannot start says why in one log line and exits with status 1 (an invalid flag: argparse's
usage message and status 2), never with a Python traceback: a container's last lines are all an operator
sees of it.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

_log = logging.getLogger("service")


def temp_dir_problem() -> str | None:
    """Why no temporary directory is usable (None: one is). TensorFlow's import asks Python's tempfile for
    one and dies with a traceback without it, so this is asked first, before TensorFlow is imported."""
    import tempfile

    try:
        chosen = tempfile.gettempdir()
    except OSError as error:  # "No usable temporary directory found in [...]"
        detail = error.args[1] if len(error.args) > 1 else str(error)
        return (
            f"no writable temporary directory: {detail}. TensorFlow needs one: mount a writable volume at /tmp "
            "(Kubernetes: an emptyDir volume; docker run: --tmpfs /tmp) or set TMPDIR to a writable directory"
        )
    wanted = os.environ.get("TMPDIR")
    if wanted and os.path.abspath(wanted) != chosen:
        _log.warning("TMPDIR=%s is not a writable directory: temporary files go to %s", wanted, chosen)
    return None


def main(argv: list[str] | None = None) -> int:
    from service.process.logs import configure_logging
    from service.process.settings import load_settings

    settings = load_settings(argv)  # an invalid flag exits here, with argparse's usage message (status 2)
    configure_logging(settings.log_level, settings.log_format, sys.stderr)
    for name in settings.flags_without_effect:
        _log.warning("--%s is accepted for compatibility but has no effect here", name)
    problem = temp_dir_problem()
    if problem is not None:
        _log.error("cannot start: %s", problem)
        return 1
    try:
        import uvloop

        from service.server import run_server  # imports TensorFlow
    except Exception as error:  # a broken installation: say so in one line too
        _log.error("cannot start: importing the server failed: %s: %s", type(error).__name__, error)
        _log.debug("import failure", exc_info=True)
        return 1
    return uvloop.run(run_server(settings))


if __name__ == "__main__":
    sys.exit(main())
