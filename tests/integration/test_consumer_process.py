"""`store-publish consume` as a process: bad input, the runbook's commands on its logs, SIGTERM."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import asyncpg

from schemas.dead_letter import DeadLetterHeaders
from schemas.events import Reason, Status
from tests.fixtures.processes import ConsumerProcessFactory
from tests.fixtures.settings import MakeSettingsWithTopics
from tests.helpers.support import (
    encode,
    producer_for,
    read_outcomes,
    read_topic,
    request_body,
    seed_creator,
    seed_steps,
)

SECRET = "runbook-secret-4f1c9a"
PUBLISHED = "published"  # a case that must go through: no reason


def _sh(command: str, log: Path) -> str:
    """A runbook command, as written, on the captured log."""
    return subprocess.run(
        ["bash", "-c", command.replace("/var/log/app.log", str(log))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


async def test_bad_input_gets_its_reason_a_dead_letter_and_the_consumer_keeps_going(
    make_settings_with_topics: MakeSettingsWithTopics,
    database_url: str,
    tmp_path: Path,
    consumer_process: ConsumerProcessFactory,
) -> None:
    from schemas.signing import sign

    settings = await make_settings_with_topics(
        event_signing_secret=SECRET,
        publish_required_steps="payments,theme",
        topic_partitions=1,
    )
    conn = await asyncpg.connect(database_url)
    try:
        await seed_steps(conn, ("payments", "theme"))
        good = [await seed_creator(conn, done=("payments", "theme")) for _ in range(6)]
        gated = await seed_creator(conn, done=())
        owner, intruder = await seed_creator(conn), await seed_creator(conn)
    finally:
        await conn.close()

    def signed(value: bytes) -> list[tuple[str, bytes]]:
        return [("signature", sign(value, SECRET.encode()).encode())]

    genuine = encode(request_body(good[0]))
    cases: list[tuple[str, bytes | None, list[tuple[str, bytes]], Reason | str | None]] = [
        ("malformed json", b'{"event_id": ', [], Reason.INVALID_PAYLOAD),
        ("wrong types", encode(request_body(good[1], confirm_publish="yes")), [], None),
        ("unknown field", encode(request_body(good[1], admin=True)), [], None),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000, [], Reason.TOO_LARGE),
        ("deep but small", b"[" * 30_000 + b"]" * 30_000, [], Reason.INVALID_PAYLOAD),
        ("invalid utf-8", b'{"event_id": "\xff\xfe"}', [], Reason.INVALID_PAYLOAD),
        ("random bytes", bytes(range(256)) * 3, [], Reason.INVALID_PAYLOAD),
        ("tombstone", None, [], Reason.INVALID_PAYLOAD),
        ("huge value", b'{"pad": "' + b"x" * 70_000 + b'"}', [], Reason.TOO_LARGE),
        ("huge number", encode(request_body(good[1], schema_version=10**400)), [], None),
        ("no signature", encode(request_body(good[1])), [("x", b"1")], Reason.BAD_SIGNATURE),
        (
            "forged",
            encode(request_body(good[1])),
            [("signature", b"sha256=" + b"ab" * 32)],
            Reason.BAD_SIGNATURE,
        ),
        ("altered body", genuine.replace(b"true", b"false"), signed(genuine), Reason.BAD_SIGNATURE),
        (
            "sql-looking",
            encode(request_body(good[5], correlation_id="'; DROP TABLE stores; --")),
            [],
            PUBLISHED,
        ),
        (
            "other user's store",
            encode(request_body(user_id=intruder.user_id, store_id=owner.store_id)),
            [],
            Reason.FORBIDDEN,
        ),
        (
            "unknown user",
            encode(request_body(user_id=uuid.uuid4(), store_id=owner.store_id)),
            [],
            Reason.USER_NOT_FOUND,
        ),
        (
            "unknown store",
            encode(request_body(user_id=owner.user_id, store_id=uuid.uuid4())),
            [],
            Reason.STORE_NOT_FOUND,
        ),
        ("gated", encode(request_body(gated)), [], Reason.MISSING_STEPS),
    ]
    goods = [encode(request_body(creator)) for creator in good[:5]]
    consumer = consumer_process(settings, "app")
    consumer.start()
    try:
        async with producer_for(settings) as producer:
            for index, (_name, value, headers, reason) in enumerate(cases):
                sent_headers = headers
                # Everything but the signature cases is signed, so it meets its own check.
                if value is not None and reason is not Reason.BAD_SIGNATURE:
                    sent_headers = [*headers, *signed(value)]
                await producer.send(
                    settings.topic_requests, value=value, key=b"k", headers=sent_headers
                )
                if index < len(goods):
                    await producer.send(
                        settings.topic_requests,
                        value=goods[index],
                        key=b"k",
                        headers=signed(goods[index]),
                    )
            await producer.flush()
        total = len(cases) + len(goods)
        outcomes = await read_outcomes(settings, expect=total)
    finally:
        assert consumer.terminate() == 0, "SIGTERM must drain and exit 0"

    assert len(outcomes) == total
    # Ordered per partition: the outcomes come back in the order the requests went in.
    expected_reasons = []
    for index, (_name, _value, _headers, reason) in enumerate(cases):
        expected_reasons.append(None if reason == PUBLISHED else (reason or Reason.INVALID_PAYLOAD))
        if index < len(goods):
            expected_reasons.append(None)
    assert [o.reason for o in outcomes] == expected_reasons
    assert [o.status for o in outcomes if o.reason is None] == [Status.PUBLISHED] * (len(goods) + 1)

    refused = Counter(o.reason for o in outcomes if o.status is Status.REJECTED)
    dead = await read_topic(settings, settings.topic_dlq, expect=sum(refused.values()))
    dead_reasons = Counter(DeadLetterHeaders.from_kafka(list(r.headers)).reason for r in dead)
    assert dead_reasons == refused
    assert Reason.MISSING_STEPS not in dead_reasons  # gated is an answer, not an error

    log = consumer.log_path
    captured = log.read_bytes() + b"".join(r.value or b"" for r in dead)
    captured += b"".join(v for r in dead for _, v in r.headers)
    assert SECRET.encode() not in captured
    assert SECRET.encode() not in b"".join(o.model_dump_json().encode() for o in outcomes)

    assert int(_sh('grep "Gating check blocked" /var/log/app.log | wc -l', log)) == 1
    steps = _sh("grep \"missingStep\" /var/log/app.log | jq '.missingStep' | sort | uniq -c", log)
    assert steps.split() == ["1", '"payments"']
    ids = _sh('grep "correlationId" /var/log/app.log | tail -20', log)
    assert all("correlationId" in json.loads(line) for line in ids.splitlines())
    assert _sh('grep "Store Publish" /var/log/app.log | wc -l', log).strip() != "0"
