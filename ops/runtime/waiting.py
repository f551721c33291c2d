"""Waiting for a service at start-up without ever outliving SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

import structlog

from ops.runtime.errors import NotAuthorized
from ops.runtime.faults import describe

log = structlog.get_logger("ops.runtime.waiting")

T = TypeVar("T")

# After a cancel, how long a task may take to unwind before it is left behind.
_CANCEL_GRACE_S = 1.0


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, or return as soon as `stop` is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def until_started(
    start: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    *,
    waiting: str,
    max_delay_s: float = 5.0,
) -> bool:
    """Call `start` until it succeeds (True) or `stop` is set first (False); each failure
    is logged as `waiting`, with backoff. A refused principal is raised at once: waiting
    does not grant an ACL."""
    delay = 0.5
    while not stop.is_set():
        try:
            await start()
            return True
        except NotAuthorized:
            raise
        except Exception as error:
            log.warning(waiting, error=describe(error))
            await sleep_or_stop(stop, delay)
            delay = min(delay * 2, max_delay_s)
    return False


async def within(work: Awaitable[T], seconds: float) -> T:
    """`work`'s result if it finishes within `seconds`; else TimeoutError, and `work` is
    cancelled and left behind.

    Unlike `asyncio.wait_for`, this never waits for the cancellation to complete: aiokafka
    aborts a transaction on cancellation and waits, shielded, for a broker that may never
    answer (a frozen broker), which would hold `wait_for` and a shutdown forever. A second
    cancel ends the shielded wait."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()  # cancelled while waiting: the work goes with it
        raise
    if done:
        return task.result()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
    if not done:
        task.cancel()
    elif not task.cancelled():
        # Retrieved, so that an error it ended with is not reported as never retrieved.
        task.exception()
    raise TimeoutError(f"not done within {seconds:g} s")
