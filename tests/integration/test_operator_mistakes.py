"""Each operator mistake gets one clear line on stderr and its documented exit code.

Exit codes (ops/errors.py, docs/runbook.md): 0 ok, 1 refused or not confirmed,
2 bad arguments or configuration, 3 no such record, 4 service unreachable, 5 not set up.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from ops.bench.load import database_url as database_named
from ops.errors import ExitCode
from schemas.events import Reason
from schemas.settings import Settings
from tests.helpers.dlq import Letter, Ran, cli, produce_dead_letters
from tests.helpers.support import read_topic


def refused(ran: Ran, code: ExitCode, *message: str) -> None:
    assert ran.code == code, (ran.code, ran.out, ran.err)
    assert "Traceback" not in ran.err + ran.out
    for part in message:
        assert part in ran.err, ran.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dlq", "show", "2-17"), "is not PARTITION:OFFSET"),
        (("dlq", "show", "a:b"), "is not PARTITION:OFFSET"),
        (("dlq", "list", "--since", "yesterday"), "neither a duration"),
        (("dlq", "list", "--since", "1h", "--until", "2h"), "--since is after --until"),
        (("dlq", "list", "--reason", "everything"), "everything"),
        (("dlq", "list", "--limit", "0"), "--limit"),
        (("dlq", "replay", "--rate", "0", "--yes"), "--rate"),
        (("pause",), "--reason"),
        (("pause", "--reason", "   "), "give the reason in words"),
    ],
)
async def test_bad_arguments_exit_2_with_the_flag_named(
    settings: Settings, args: tuple[str, ...], message: str
) -> None:
    refused(await cli(settings, *args), ExitCode.BAD_ARGUMENTS, message)


async def test_invalid_configuration_exits_2_naming_the_variable(settings: Settings) -> None:
    ran = await cli(settings, "dlq", "list", DLQ_MAX_REPLAYS="-1")
    refused(ran, ExitCode.BAD_ARGUMENTS, "invalid configuration", "DLQ_MAX_REPLAYS")


async def test_an_unknown_offset_or_partition_exits_3(settings: Settings) -> None:
    (position,) = await produce_dead_letters(settings, [Letter(Reason.FORBIDDEN)])
    partition, offset = position.split(":")
    refused(
        await cli(settings, "dlq", "show", f"{partition}:{int(offset) + 1000}"),
        ExitCode.NOT_FOUND,
        f"no record at {partition}:{int(offset) + 1000}",
    )
    refused(await cli(settings, "dlq", "show", "99:0"), ExitCode.NOT_FOUND, "no partition 99")
    assert (await cli(settings, "dlq", "show", position)).code == ExitCode.OK


async def test_an_unreachable_kafka_exits_4_within_seconds(settings: Settings) -> None:
    for args in (("dlq", "list"), ("dlq", "replay", "--yes"), ("status",)):
        ran = await cli(settings, *args, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
        refused(ran, ExitCode.UNREACHABLE, "Kafka unreachable at 127.0.0.1:1")
        assert ran.seconds < 20
        assert ran.err.count("\n") == 1  # one line, no aiokafka log noise


async def test_an_unreachable_database_exits_4_within_seconds(settings: Settings) -> None:
    down = "postgresql://postgres@127.0.0.1:1/none"
    for args in (("status",), ("pause", "--reason", "x"), ("dlq", "replay", "--yes")):
        ran = await cli(settings, *args, DATABASE_URL=down)
        refused(ran, ExitCode.UNREACHABLE, "PostgreSQL unreachable")
        assert ran.seconds < 20
        assert "postgres@" not in ran.err  # the URL may carry a password: never printed


async def test_a_missing_topic_or_table_exits_5_and_says_migrate(
    settings: Settings, services: dict[str, str]
) -> None:
    ran = await cli(settings, "dlq", "list", TOPIC_DLQ=f"t.{uuid.uuid4().hex}.absent")
    refused(ran, ExitCode.NOT_SET_UP, "does not exist", "store-publish migrate", "TOPIC_DLQ")

    empty = f"t_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services["DATABASE_URL"])
    try:
        await admin.execute(f'CREATE DATABASE "{empty}"')
        ran = await cli(
            settings, "status", DATABASE_URL=database_named(services["DATABASE_URL"], empty)
        )
        refused(ran, ExitCode.NOT_SET_UP, "not migrated", "store-publish migrate")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)')
        await admin.close()


async def test_a_replay_without_an_answer_on_stdin_is_refused_and_sends_nothing(
    settings: Settings,
) -> None:
    await produce_dead_letters(settings, [Letter(Reason.RETRIES_EXHAUSTED)])
    refused(await cli(settings, "dlq", "replay"), ExitCode.REFUSED, "no answer on stdin", "--yes")
    refused(await cli(settings, "dlq", "replay", answer=b"n\n"), ExitCode.REFUSED, "not confirmed")
    assert await read_topic(settings, settings.topic_requests, expect=0, wait_s=1) == []
    confirmed = await cli(settings, "dlq", "replay", answer=b"y\n")
    assert confirmed.code == ExitCode.OK, confirmed.err
    assert len(await read_topic(settings, settings.topic_requests, expect=1, wait_s=10)) == 1
