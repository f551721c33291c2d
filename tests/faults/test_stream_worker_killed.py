"""Stream workers SIGKILLed while outcomes flow: a folding worker's partitions move, then the
evaluator's merge moves; tables recover from their changelogs, every outcome is counted
exactly once, and the alert rules fire once and resolve once across both moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops.runtime.topics import ensure_topics
from schemas.events import Alert, AlertState, PublishOutcome, Status
from schemas.settings import Settings
from streams.alerts import AUTO_ROLLBACK, HIGH_ERROR_RATE
from tests.fixtures.settings import MakeSettings
from tests.helpers.stream import (
    StreamWorkers,
    evaluator_of,
    for_workers,
    outcome,
    read_alerts,
    send_outcomes,
)
from tests.helpers.support import holds_for, producer_for

pytestmark = pytest.mark.timeout(400)

DEGRADED = 400  # 30% failed: the error-rate and rollback rules fire
HEALTHY = 4_000  # then enough published outcomes to bring failed/all under 5%


def _holds_all_and_evaluated_since(
    report: dict[str, object] | None, settings: Settings, moment: datetime
) -> bool:
    if report is None or report.get("partitions") != list(range(settings.topic_partitions)):
        return False
    evaluated = report.get("last_evaluated_at")
    return isinstance(evaluated, str) and datetime.fromisoformat(evaluated) > moment


class Feed:
    """Sends outcomes in small chunks in the background, so workers die mid-fetch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent = 0

    async def send(self, items: list[PublishOutcome], per_chunk: int = 40) -> None:
        async with producer_for(self.settings) as producer:
            for at in range(0, len(items), per_chunk):
                chunk = items[at : at + per_chunk]
                await send_outcomes(producer, self.settings, *chunk)
                self.sent += len(chunk)
                await asyncio.sleep(0.05)


async def test_killed_workers_move_their_partitions_and_the_merge_and_count_each_outcome_once(
    make_settings: MakeSettings, database_url: str, tmp_path: Path
) -> None:
    settings = for_workers(make_settings, alert_min_events=50)
    await ensure_topics(settings)
    degraded = [outcome(Status.FAILED if i % 10 < 3 else Status.PUBLISHED) for i in range(DEGRADED)]
    healthy = [outcome(Status.PUBLISHED) for _ in range(HEALTHY)]
    workers = StreamWorkers(settings, tmp_path)
    feed = Feed(settings)
    for name in ("a", "b", "c"):
        workers.start(name)
    try:
        await feed.send(degraded)
        evaluator = await workers.window_reaches(DEGRADED, within_s=180)
        fired = await read_alerts(settings, expect=2, wait_s=30)
        assert len(fired) == 2, fired

        # A folding worker killed while the healthy outcomes flow: its partitions move.
        folding = next(n for n in sorted(workers.workers) if n != evaluator)
        sending = asyncio.create_task(feed.send(healthy[: HEALTHY // 2]))
        await asyncio.sleep(0.5)
        workers.kill(folding)
        await sending
        await workers.window_reaches(DEGRADED + HEALTHY // 2, within_s=120)

        # The evaluator killed mid-flow: the last worker recovers the window and the rules.
        sending = asyncio.create_task(feed.send(healthy[HEALTHY // 2 :]))
        await asyncio.sleep(0.5)
        workers.kill(evaluator)
        await sending
        reports = await workers.wait_for(
            lambda r: evaluator_of(r) not in (None, evaluator), 120, "another evaluator"
        )
        survivor = evaluator_of(reports)
        assert await workers.window_reaches(DEGRADED + HEALTHY, within_s=120) == survivor
        reached = datetime.now(UTC)
        # Settled once the survivor holds every partition and has evaluated since: from
        # there, nothing counted twice, however long it keeps folding.
        await workers.wait_for(
            lambda r: _holds_all_and_evaluated_since(r.get(survivor), settings, reached),
            60,
            "the survivor holding every partition and evaluating",
        )

        async def unchanged() -> bool:
            seen = await workers.metric(survivor, "store_publish_window_outcomes")
            return seen == DEGRADED + HEALTHY

        await holds_for(3.0, unchanged, "the survivor's window moved past every outcome sent")
        window = await workers.metric(survivor, "store_publish_window_outcomes")
        folded = await workers.metric(survivor, "store_publish_stream_outcomes_total")
        alerts = [
            Alert.model_validate_json(r.value or b"")
            for r in await read_alerts(settings, expect=5, wait_s=15)
        ]
    finally:
        workers.stop_all()

    assert feed.sent == DEGRADED + HEALTHY
    assert window == DEGRADED + HEALTHY
    print(f"\nthe survivor folded {folded:,.0f} of {feed.sent:,} outcomes itself")
    episodes = sorted((a.alert, a.evaluated_at, a.state) for a in alerts)
    # One firing and one resolution per rule, across a partition move and a merge move.
    assert [(name, state) for name, _, state in episodes] == [
        (AUTO_ROLLBACK, AlertState.FIRING),
        (AUTO_ROLLBACK, AlertState.RESOLVED),
        (HIGH_ERROR_RATE, AlertState.FIRING),
        (HIGH_ERROR_RATE, AlertState.RESOLVED),
    ]
