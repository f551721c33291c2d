"""A second consumer joins and leaves mid-run; one consumer stalls past its session."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.accounting import account
from tests.helpers.support import LogLines, log_shows, times_logged
from tests.helpers.workload import seed_and_send, wait_for_progress, wait_until_committed

REQUESTS = 20_000


def _assigned(lines: LogLines) -> set[object] | None:
    """The partitions of the last assignment a consumer logged; None before the first."""
    found = [line for line in lines if line.get("message") == "Partitions assigned"]
    partitions = found[-1].get("partitions") if found else None
    return set(partitions) if isinstance(partitions, list) else None


@pytest.mark.timeout(600)
async def test_joining_leaving_and_a_stalled_zombie_publish_nothing_twice(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    consumer_process: ConsumerProcessFactory,
) -> None:
    settings = await make_settings_with_topics(topic_partitions=6)
    # Sent over about ten seconds, so the group has time to share the partitions.
    sending = asyncio.create_task(
        seed_and_send(settings, database_url, creators=5_000, requests=REQUESTS, rate=2_000)
    )
    sent = REQUESTS
    first = consumer_process(settings, "first")
    second = consumer_process(settings, "second")
    first.start()
    moments: list[str] = []
    try:
        moments.append(f"second joins at {await wait_for_progress(database_url, sent // 7)}")
        second.start()
        await log_shows(second, lambda lines: _assigned(lines) is not None, "an assignment")
        reached = await wait_for_progress(database_url, sent * 2 // 7)
        moments.append(f"shared from before {reached}")
        # Frozen past the group's session timeout: the group gives its partitions to the
        # other consumer; when it wakes, anything it still tries to write is stale.
        assert first.process is not None
        assignments = times_logged(second.log_lines(), {"Partitions assigned"})
        first.process.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        moments.append(f"first frozen at {reached}")
        every = set(range(settings.topic_partitions))
        # Woken once the group has given every partition to the second consumer.
        await log_shows(
            second,
            lambda lines: (
                times_logged(lines, {"Partitions assigned"}) > assignments
                and _assigned(lines) == every
            ),
            "every partition assigned to it after the freeze",
            wait_s=120,
        )
        first.process.send_signal(signal.SIGCONT)
        moments.append(f"first woken after {time.monotonic() - frozen_at:.0f} s")
        reached = await wait_for_progress(database_url, sent * 5 // 7)
        assert second.terminate() == 0
        moments.append(f"second leaves at {reached}")
        await sending
        await wait_until_committed(settings, sent)
    finally:
        sending.cancel()
        assert first.terminate(timeout=120) == 0
        if second.process is not None and second.process.poll() is None:
            second.kill()
    books = await account(settings, database_url, sent=sent)
    print()
    print(books.table("; ".join(moments)))
    assert books.problems() == []
    fenced_or_revoked = {line.get("message") for line in first.log_lines() + second.log_lines()} & {
        "Partitions revoked",
        "Producer fenced, partition taken over",
    }
    assert "Partitions revoked" in fenced_or_revoked
