"""Logging set-up for the CLI verbs: ``-l/--loglevel`` and ``-f/--logfile``."""

from __future__ import annotations

import logging
import sys

from celeriac import signals
from celeriac.errors import ConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_level(value: str) -> str:
    """argparse type for ``--loglevel``: a level name, any case."""
    level = value.upper()
    if level not in LEVELS:
        raise ValueError(value)
    return level


def setup_logging(level: str, logfile: str | None, fmt: str) -> None:
    """Send celeriac's (and the tasks') logging to stderr or ``logfile`` at ``level``.

    As Celery: when a ``setup_logging`` receiver is connected, it configures logging and celeriac does nothing;
    else ``after_setup_logger`` is sent once the root logger is set up.
    """
    if signals.setup_logging.has_receivers():
        signals.setup_logging.send(loglevel=level, logfile=logfile, format=fmt, colorize=False)
        return
    try:
        handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    except OSError as exc:
        raise ConfigurationError(f"--logfile {logfile}: {exc.strerror}") from None
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if signals.after_setup_logger.has_receivers():
        signals.after_setup_logger.send(logger=root, loglevel=level, logfile=logfile, format=fmt, colorize=False)
