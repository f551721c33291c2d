"""A small poll's partitions decided in one PostgreSQL transaction: the same results and
records as one transaction each, and nothing written when a claim of it is lost."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from consumers import repository as repo
from consumers.batch import BatchHandler
from consumers.decide_in_db import PostgresDecisions
from consumers.errors import DecideSeparately
from consumers.outcomes import InboundRecord
from schemas.events import Reason, Status
from schemas.settings import Settings
from schemas.signing import sign
from tests.fixtures.creators import MakeCreators
from tests.helpers.support import Creator, encode, request_body


def _record(settings: Settings, partition: int, offset: int, value: bytes) -> InboundRecord:
    headers: tuple[tuple[str, bytes], ...] = ()
    if settings.event_signing_secret is not None:
        secret = settings.event_signing_secret.get_secret_value().encode()
        headers = (("signature", sign(value, secret).encode()),)
    return InboundRecord(
        settings.topic_requests, partition, offset, None, value, headers, 0, datetime.now(UTC)
    )


async def _claims(
    conn: asyncpg.Connection, settings: Settings, partitions: range
) -> list[repo.PartitionClaim]:
    made = []
    for partition in partitions:
        claimed = await repo.claim_partition(
            conn, settings.consumer_group, settings.topic_requests, partition, "host:1", "id-a"
        )
        made.append(claimed.claim)
    return made


async def test_two_partitions_in_one_transaction_get_their_results_and_records_in_order(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    ready = await make_creators(2)
    gated = await make_creators(1, done=())
    # An existing user naming a store of somebody else.
    stranger = Creator(gated[0].user_id, ready[1].store_id)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            claims = await _claims(conn, settings, range(2))
        first = [
            _record(settings, 0, 10, encode(request_body(ready[0]))),
            _record(settings, 0, 11, b"{not json"),
            _record(settings, 0, 12, encode(request_body(stranger))),
        ]
        second = [
            _record(settings, 1, 40, encode(request_body(gated[0]))),
            _record(settings, 1, 41, encode(request_body(ready[1]))),
        ]
        handler = BatchHandler(settings, PostgresDecisions(settings, pool))
        results = await handler.handle_together([(first, claims[0]), (second, claims[1])])
        statuses = [[(r.outcome.status, r.outcome.reason) for r in batch] for batch in results]
        assert statuses == [
            [
                (Status.PUBLISHED, None),
                (Status.REJECTED, Reason.INVALID_PAYLOAD),
                (Status.REJECTED, Reason.FORBIDDEN),
            ],
            [(Status.GATED, Reason.MISSING_STEPS), (Status.PUBLISHED, None)],
        ]
        assert [[r.record.offset for r in batch] for batch in results] == [[10, 11, 12], [40, 41]]
        rows = await pool.fetch(
            "SELECT source_partition, source_offset, status FROM publish_requests ORDER BY 1, 2"
        )
        # The refusal on its bytes is not recorded; every decided request is, where it was read.
        assert [tuple(row) for row in rows] == [
            (0, 10, "published"),
            (0, 12, "rejected"),
            (1, 40, "gated"),
            (1, 41, "published"),
        ]
    finally:
        await pool.close()


async def test_a_lost_claim_writes_nothing_and_asks_for_each_partition_alone(
    settings: Settings, database_url: str, make_creators: MakeCreators
) -> None:
    ready = await make_creators(2)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            claims = await _claims(conn, settings, range(2))
            # Partition 1 claimed by another consumer meanwhile.
            await _claims(conn, settings, range(1, 2))
        batches = [
            ([_record(settings, 0, 0, encode(request_body(ready[0])))], claims[0]),
            ([_record(settings, 1, 0, encode(request_body(ready[1])))], claims[1]),
        ]
        with pytest.raises(DecideSeparately, match="partition lost"):
            await BatchHandler(settings, PostgresDecisions(settings, pool)).handle_together(batches)
        assert await pool.fetchval("SELECT count(*) FROM publish_requests") == 0
        assert await pool.fetchval("SELECT count(*) FROM stores WHERE status = 'published'") == 0
        # Alone, the partition still held goes through.
        alone = await BatchHandler(settings, PostgresDecisions(settings, pool)).handle(*batches[0])
        assert [r.outcome.status for r in alone] == [Status.PUBLISHED]
    finally:
        await pool.close()
