"""The demo's console is its story: every log line (ours, aiokafka's, faust's) goes to a file.

A start-up transient such as aiokafka's `GroupCoordinatorNotAvailableError` is normal, and
in the middle of the account it reads as a failure; in the file it is there for whoever asks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import structlog

from ops.runtime.logs import configure_logging


def log_to_file(path: Path, level: str = "INFO") -> None:
    """The same JSON lines as on stdout, appended to `path` instead."""
    configure_logging(level)
    stream = path.open("a", encoding="utf-8")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
