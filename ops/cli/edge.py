"""The command line's edge: every failure becomes one line on stderr and an exit code.

What the line and the code are is `ops.errors`' decision; this module only prints them the
way typer exits. Anything unforeseen is one line too, and with `LOG_LEVEL=DEBUG` its
traceback first.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from ops.errors import ExitCode, explain
from schemas.settings import Settings


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print `message` on stderr; the caller raises the returned Exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def _debugging() -> bool:
    # From the environment, not from Settings: the settings themselves may be what failed.
    return os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"


@contextmanager
def operator_errors(*, quiet_kafka: bool = True) -> Iterator[None]:
    """Turn every failure into one line on stderr and an exit code, at the CLI edge only.

    `quiet_kafka`: aiokafka logs every failed connection attempt, and a short command's
    operator gets one line from us instead; the long-running processes (consumer, stream,
    demo, bench) keep aiokafka's lines in their logs."""
    if quiet_kafka:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        yield
    except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
        raise  # typer's own exits and usage errors
    except Exception as error:
        if _debugging():
            traceback.print_exception(error)
        message, code = explain(error)
        raise fail(message, code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", ExitCode.REFUSED) from None


@contextmanager
def configured(*, quiet_kafka: bool = True) -> Iterator[Settings]:
    """The settings, read from the environment inside `operator_errors`: a bad setting is one
    line and an exit code like any other failure of the command."""
    with operator_errors(quiet_kafka=quiet_kafka):
        yield Settings()
