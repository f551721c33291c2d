"""The retry policy of the contract, built once from the settings for tenacity."""

from __future__ import annotations

from collections.abc import Callable

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from ops.runtime.faults import is_worth_retrying
from schemas.settings import Settings


def backoff_seconds(settings: Settings, attempt: int) -> float:
    """The delay after attempt `attempt` (1-based): initial * factor^(attempt-1), capped."""
    delay_ms = settings.retry_initial_delay_ms * settings.retry_backoff_factor ** (attempt - 1)
    return min(delay_ms, settings.retry_max_delay_ms) / 1000


def request_retrying(
    settings: Settings,
    *,
    attempts_made: int,
    retry_on: Callable[[BaseException], bool] = is_worth_retrying,
) -> AsyncRetrying:
    """Retries after `attempts_made` attempts already made (0 for a batch, 1 for a request
    retried alone after its batch).

    Only errors `retry_on` accepts (transient ones by default); at most `RETRY_MAX_ATTEMPTS`
    in all; the first wait is the one the contract gives for the attempt after those made.
    """
    first_wait_ms = settings.retry_initial_delay_ms * settings.retry_backoff_factor**attempts_made
    return AsyncRetrying(
        stop=stop_after_attempt(max(settings.retry_max_attempts - attempts_made, 1)),
        wait=wait_exponential(
            multiplier=first_wait_ms / 1000,
            exp_base=settings.retry_backoff_factor,
            max=settings.retry_max_delay_ms / 1000,
        ),
        retry=retry_if_exception(retry_on),
        reraise=True,
    )
