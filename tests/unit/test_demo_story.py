"""The demo's accounts as pure functions, and its console at 80 columns."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import UTC, datetime

from rich.console import Console

from ops.demo.account import inspect_command, print_account, print_checks, print_pasteable
from ops.demo.acts import outage_checks, replay_checks, replay_command
from ops.demo.plan import Plan
from ops.demo.story import demo_settings
from schemas.events import PublishOutcome, Reason, Status
from schemas.settings import Settings

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def outcome(
    status: Status, reason: Reason | None = None, request: uuid.UUID | None = None
) -> PublishOutcome:
    return PublishOutcome(
        event_id=uuid.uuid4(),
        request_event_id=request or uuid.uuid4(),
        correlation_id="c",
        user_id=uuid.uuid4(),
        store_id=uuid.uuid4(),
        status=status,
        reason=reason,
        processing_ms=1.0,
        latency_ms=2.0,
        processed_at=NOW,
    )


def console80() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, color_system=None), out


def test_an_outage_balances_only_when_all_wait_then_all_publish_and_none_is_dead() -> None:
    sent = [uuid.uuid4() for _ in range(3)]
    after = [outcome(Status.PUBLISHED, request=r) for r in sent]
    assert all(outage_checks(sent, 0, True, after, 0).values())
    assert not all(outage_checks(sent, 1, True, after, 0).values())
    assert not all(outage_checks(sent, 0, False, after, 0).values())
    assert not all(outage_checks(sent, 0, True, after[:2], 0).values())
    assert not all(outage_checks(sent, 0, True, after, 1).values())
    failed = [*after[:2], outcome(Status.FAILED, Reason.RETRIES_EXHAUSTED, sent[2])]
    assert not all(outage_checks(sent, 0, True, failed, 0).values())


def test_a_replay_balances_when_the_outcome_changes_to_one_publish() -> None:
    request = uuid.uuid4()
    before = outcome(Status.FAILED, Reason.RETRIES_EXHAUSTED, request)
    after = [outcome(Status.PUBLISHED, request=request)]
    assert all(replay_checks(before, after, 0, 0).values())
    assert not all(replay_checks(None, after, 0, 0).values())
    assert not all(replay_checks(before, after, 2, 0).values())
    assert not all(replay_checks(before, after * 2, 0, 0).values())
    assert not all(replay_checks(before, [before], 0, 1).values())
    refused = outcome(Status.REJECTED, Reason.STORE_NOT_FOUND, request)
    assert not all(replay_checks(refused, after, 0, 0).values())


def test_the_closing_command_pastes_as_one_line_at_80_columns() -> None:
    settings = demo_settings(Settings(), "20261130120000-abcd")
    console, out = console80()
    print_pasteable(console, "inspect this run with:", inspect_command(settings))
    lines = out.getvalue().splitlines()
    assert lines[0] == "inspect this run with:"
    assert lines[1] == inspect_command(settings)
    assert len(lines) == 2
    assert len(lines[1]) > 80
    assert replay_command("x").startswith("store-publish dlq replay --store-id x")


def test_the_account_fits_80_columns() -> None:
    settings = demo_settings(Settings(), "20261130120000-abcd")
    plan = Plan(
        values=[(f"{{{n}}}".encode(), []) for n in range(4)],
        kinds=Counter({"own store": 3, "malformed": 1}),
    )
    outcomes = [outcome(Status.PUBLISHED) for _ in range(3)] + [
        outcome(Status.REJECTED, Reason.INVALID_PAYLOAD)
    ]
    console, out = console80()
    balanced = print_account(
        console, settings, plan, outcomes, Counter({"invalid_payload": 1}), [], 1.5
    )
    assert print_checks(console, {"a check": True})
    text = out.getvalue()
    print(text)
    assert balanced
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "MISMATCH" not in text
