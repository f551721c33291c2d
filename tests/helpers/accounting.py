"""The proof a fault test gives: every request has exactly one final outcome, no store was
published twice, no analytics row doubled, nothing lost. Printed as a table, checked as a whole."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from schemas.events import PublishOutcome, Status
from schemas.settings import Settings
from tests.helpers.support import outcomes_of, read_topic
from tests.helpers.workload import decided


@dataclass
class Accounting:
    requests: int = 0
    distinct_requests: int = 0
    outcome_records: int = 0
    requests_with_outcome: int = 0
    lost: int = 0
    duplicate_outcomes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    stores_published: int = 0
    published_twice: int = 0
    analytics_published_rows: int = 0
    analytics_doubled: int = 0
    dead_letters: int = 0
    dead_letters_expected: int = 0
    lost_where: list[dict[str, object]] = field(default_factory=list)
    out_of_order: int = 0

    def problems(self, *, allow_failed: int = 0) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{self.lost} request(s) without an outcome: {self.lost_where}")
        if self.duplicate_outcomes:
            found.append(f"{self.duplicate_outcomes} duplicate outcome record(s)")
        if self.out_of_order:
            found.append(f"{self.out_of_order} outcome(s) out of their partition's order")
        if self.published_twice:
            found.append(f"{self.published_twice} store(s) published twice")
        if self.analytics_doubled:
            found.append(f"{self.analytics_doubled} doubled analytics row(s)")
        if self.stores_published != self.analytics_published_rows:
            found.append(
                f"{self.stores_published} stores published but "
                f"{self.analytics_published_rows} store.published rows"
            )
        if self.dead_letters != self.dead_letters_expected:
            found.append(
                f"{self.dead_letters} dead letters for {self.dead_letters_expected} refusals"
            )
        if self.statuses.get(Status.FAILED.value, 0) > allow_failed:
            found.append(f"{self.statuses[Status.FAILED.value]} failed outcome(s)")
        return found

    def table(self, title: str) -> str:
        rows = [
            ("requests sent (records)", self.requests),
            ("distinct request ids", self.distinct_requests),
            ("outcome records (read_committed)", self.outcome_records),
            ("requests with an outcome", self.requests_with_outcome),
            ("requests lost", self.lost),
            ("duplicate outcome records", self.duplicate_outcomes),
            ("outcomes out of partition order", self.out_of_order),
            *((f"  status {status}", count) for status, count in sorted(self.statuses.items())),
            ("stores published", self.stores_published),
            ("stores published twice", self.published_twice),
            ("store.published analytics rows", self.analytics_published_rows),
            ("analytics rows doubled", self.analytics_doubled),
            ("dead letters", self.dead_letters),
            ("refusals that must be dead-lettered", self.dead_letters_expected),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"== {title} ==", *(f"{name:<{width}}  {value:>8}" for name, value in rows)]
        return "\n".join(lines)


async def account(settings: Settings, database_url: str, *, sent: int) -> Accounting:
    result = Accounting(requests=sent)
    requests = await read_topic(settings, settings.topic_requests, expect=sent, wait_s=30)
    ids = {uuid.UUID(json.loads(r.value or b"{}")["event_id"]) for r in requests}
    result.distinct_requests = len(ids)
    outcome_records = await read_topic(settings, settings.topic_outcomes, expect=sent, wait_s=120)
    outcomes: list[PublishOutcome] = outcomes_of(outcome_records)
    # Order kept per partition: within an outcome partition, the requests' offsets rise.
    position = {
        uuid.UUID(json.loads(r.value or b"{}")["event_id"]): (r.partition, r.offset)
        for r in requests
    }
    last_seen: dict[int, int] = {}
    for outcome in outcomes:
        source = position.get(outcome.request_event_id) if outcome.request_event_id else None
        if source is None:
            continue
        if source[1] < last_seen.get(source[0], -1):
            result.out_of_order += 1
        last_seen[source[0]] = max(source[1], last_seen.get(source[0], -1))
    result.outcome_records = len(outcomes)
    per_request = Counter(o.request_event_id for o in outcomes)
    result.requests_with_outcome = len(ids & set(per_request))
    missing = ids - set(per_request)
    result.lost = len(missing)
    if missing:
        # Where the lost requests came from, to tell a fault from a slow reader.
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                """SELECT source_partition AS p, min(source_offset) AS lo,
                          max(source_offset) AS hi, count(*) AS n
                     FROM publish_requests WHERE event_id = ANY($1::uuid[]) GROUP BY 1""",
                list(missing),
            )
        finally:
            await conn.close()
        result.lost_where = [dict(row) for row in rows]
    # A request sent twice (redelivered by the test itself) has two records legitimately.
    sent_per_id = Counter(uuid.UUID(json.loads(r.value or b"{}")["event_id"]) for r in requests)
    result.duplicate_outcomes = sum(
        max(count - sent_per_id.get(rid, 1), 0) for rid, count in per_request.items() if rid
    )
    final: dict[uuid.UUID | None, PublishOutcome] = {}
    for outcome in outcomes:
        final[outcome.request_event_id] = outcome
    result.statuses = Counter(o.status.value for o in final.values())
    result.dead_letters_expected = sum(
        1 for o in outcomes if o.status in (Status.REJECTED, Status.FAILED)
    )
    dead = await read_topic(
        settings, settings.topic_dlq, expect=result.dead_letters_expected, wait_s=30
    )
    result.dead_letters = len(dead)
    conn = await asyncpg.connect(database_url)
    try:
        published = Counter(o.store_id for o in final.values() if o.status is Status.PUBLISHED)
        result.stores_published = len(published)
        result.published_twice = sum(1 for count in published.values() if count > 1)
        rows = await conn.fetch(
            """SELECT metadata->>'storeId' AS store, count(*) AS n FROM onboarding_events
                WHERE event_type = 'store.published' GROUP BY 1"""
        )
        result.analytics_published_rows = sum(row["n"] for row in rows)
        result.analytics_doubled = sum(row["n"] - 1 for row in rows if row["n"] > 1)
        blocked = await conn.fetch(
            """SELECT metadata->>'requestEventId' AS request, step_id, count(*) AS n
                 FROM onboarding_events WHERE event_type = 'gating.blocked' GROUP BY 1, 2"""
        )
        result.analytics_doubled += sum(row["n"] - 1 for row in blocked if row["n"] > 1)
        by_event = await conn.fetchval(
            "SELECT count(*) FROM stores WHERE published_by_event_id IS NOT NULL"
        )
        if by_event != result.stores_published:
            result.published_twice += abs(int(by_event) - result.stores_published)
    finally:
        await conn.close()
    return result


async def every_request_once(
    settings: Settings, database_url: str, *, sent: int, title: str
) -> Accounting:
    """The run's books, printed under `title`, once every request sent has been decided
    exactly once and nothing is wrong with them (`Accounting.problems`)."""
    books = await account(settings, database_url, sent=sent)
    print()
    print(books.table(title))
    assert await decided(database_url) == sent
    assert books.problems() == []
    return books
