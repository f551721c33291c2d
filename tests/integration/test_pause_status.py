"""`pause`, `resume` and `status` against the real broker and database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from schemas.events import Alert, AlertAction, AlertState
from schemas.settings import Settings
from tests.helpers.dlq import cli
from tests.helpers.support import producer_for


async def status_of(settings: Settings) -> dict[str, object]:
    ran = await cli(settings, "status", "--json")
    assert ran.code == 0, ran.err
    found: dict[str, object] = json.loads(ran.out)
    return found


async def test_pause_and_resume_say_why_since_when_and_by_whom(
    settings: Settings, database_url: str
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    paused = await cli(settings, "pause", "--reason", "error spike, INC-42")
    assert paused.code == 0, paused.err
    assert "PAUSED" in paused.out
    state = await status_of(settings)
    assert state["paused"] is True
    assert state["reason"] == "error spike, INC-42"
    assert state["changed_by"] == "cli:oncall-1"
    since = datetime.fromisoformat(str(state["changed_at"]))
    assert since > before

    again = await cli(settings, "pause", "--reason", "another reason", STORE_PUBLISH_OPERATOR="bob")
    assert again.code == 0, again.err
    assert "already paused" in again.out
    state = await status_of(settings)
    assert (state["reason"], state["changed_by"]) == ("error spike, INC-42", "cli:oncall-1")
    assert datetime.fromisoformat(str(state["changed_at"])) == since

    resumed = await cli(settings, "resume", STORE_PUBLISH_OPERATOR="bob")
    assert resumed.code == 0, resumed.err
    state = await status_of(settings)
    assert (state["paused"], state["reason"], state["changed_by"]) == (False, None, "cli:bob")
    assert "already running" in (await cli(settings, "resume")).out

    conn = await asyncpg.connect(database_url)
    try:
        history = await conn.fetch(
            "SELECT paused, changed_by FROM publish_control_history ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(row["paused"], row["changed_by"]) for row in history] == [
        (True, "cli:oncall-1"),
        (False, "cli:bob"),
    ]


async def test_status_shows_the_lag_per_partition_of_the_consumer_group(
    settings: Settings,
) -> None:
    async with producer_for(settings) as producer:
        for index in range(7):
            await producer.send_and_wait(settings.topic_requests, b"{}", partition=index % 2)
    state = await status_of(settings)
    lag = {row["partition"]: row for row in state["lag"]}  # type: ignore[attr-defined]
    assert (lag[0]["committed"], lag[0]["lag"], lag[1]["lag"], lag[2]["lag"]) == (None, 4, 3, 0)

    committer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await committer.start()
    try:
        tp = TopicPartition(settings.topic_requests, 0)
        committer.assign([tp])
        await committer.commit({tp: OffsetAndMetadata(3, "")})
    finally:
        await committer.stop()
    state = await status_of(settings)
    lag = {row["partition"]: row for row in state["lag"]}  # type: ignore[attr-defined]
    assert (lag[0]["committed"], lag[0]["end"], lag[0]["lag"]) == (3, 4, 1)
    assert state["total_lag"] == 4
    assert state["consumer_group"] == settings.consumer_group


async def test_status_counts_recent_outcomes_and_rates(
    settings: Settings, database_url: str
) -> None:
    rows = [
        ("published", None, 1, 0),
        ("published", None, 2, 0),
        ("published", None, 1, 0),
        ("gated", "missing_steps", 0, 0),
        ("failed", "retries_exhausted", 3, 0),
        ("published", None, 1, 30),  # long ago: outside the window
    ]
    conn = await asyncpg.connect(database_url)
    try:
        for status, reason, attempts, minutes_ago in rows:
            await conn.execute(
                """INSERT INTO publish_requests
                       (event_id, store_id, user_id, status, reason, outcome, attempts,
                        processed_at)
                   VALUES ($1, $2, $3, $4, $5, '{}'::jsonb, $6,
                           now() - make_interval(mins => $7))""",
                uuid.uuid4(),
                uuid.uuid4(),
                uuid.uuid4(),
                status,
                reason,
                attempts,
                minutes_ago,
            )
    finally:
        await conn.close()
    outcomes = (await status_of(settings))["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes["total"] == 5
    assert outcomes["failed_share"] == 0.2
    assert outcomes["gated_share"] == 0.2
    assert outcomes["retry_share"] == 0.4
    assert {(c["status"], c["reason"]): c["count"] for c in outcomes["counts"]} == {
        ("published", None): 3,
        ("gated", "missing_steps"): 1,
        ("failed", "retries_exhausted"): 1,
    }
    human = await cli(settings, "status")
    assert human.code == 0, human.err
    assert "failed 20.0%" in human.out


def alert(name: str, state: AlertState, seconds_ago: float) -> bytes:
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return (
        Alert(
            alert=name,
            state=state,
            action=AlertAction.PAGE_ONCALL,
            value=0.2,
            threshold=0.05,
            for_seconds=300,
            window_start=at - timedelta(minutes=5),
            window_end=at,
            evaluated_at=at,
        )
        .model_dump_json()
        .encode()
    )


async def test_status_shows_the_last_alerts_and_which_are_firing(settings: Settings) -> None:
    async with producer_for(settings) as producer:
        for value in (
            alert("store_publish_high_error_rate", AlertState.FIRING, 60),
            alert("store_publish_slow_response", AlertState.FIRING, 50),
            alert("store_publish_high_error_rate", AlertState.RESOLVED, 40),
            alert("store_publish_auto_rollback", AlertState.FIRING, 30),
        ):
            await producer.send_and_wait(settings.topic_alerts, value, key=b"k")
        await producer.send_and_wait(settings.topic_alerts, b"not an alert", key=b"k")
    state = await status_of(settings)
    assert state["firing"] == ["store_publish_auto_rollback", "store_publish_slow_response"]
    alerts = state["alerts"]
    assert isinstance(alerts, list)
    assert [a["alert"] for a in alerts][-1] == "store_publish_auto_rollback"
    assert len(alerts) == 4

    few = json.loads((await cli(settings, "status", "--json", "--alerts", "2")).out)
    assert len(few["alerts"]) == 2
    assert few["firing"] == state["firing"]
