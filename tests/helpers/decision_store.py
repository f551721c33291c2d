"""A `DecisionStore` in memory: each store's requests publish, unless a script of errors for
that store says to fail its next transactions first. Every call is recorded, so a test can
count attempts and see which requests went together."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumers.decision import Verdict
from consumers.outcomes import InboundRecord
from consumers.repository import PartitionClaim
from consumers.results import Authenticated, Result, Results
from consumers.retrying import Progress
from schemas.events import PublishRequested, Status

TOPIC = "requests"
CLAIM = PartitionClaim("group", TOPIC, 0, 1)


def authenticated(offset: int, store_id: uuid.UUID | None = None) -> Authenticated:
    request = PublishRequested(
        event_id=uuid.uuid4(),
        schema_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=f"corr-{offset}",
        user_id=uuid.uuid4(),
        store_id=store_id or uuid.uuid4(),
        confirm_publish=True,
        notify_customers=False,
    )
    record = InboundRecord(
        topic=TOPIC,
        partition=0,
        offset=offset,
        key=str(request.store_id).encode(),
        value=request.model_dump_json().encode(),
        headers=(),
        timestamp_ms=int(datetime.now(UTC).timestamp() * 1000),
        received_at=datetime.now(UTC),
    )
    return Authenticated(record, request)


@dataclass
class Call:
    stores: tuple[uuid.UUID, ...]
    attempts: int


@dataclass
class ScriptedStore:
    """`fail[store_id]`: the errors its next transactions raise, in order (a batch holding the
    store fails with the first one left). `fail_in_gating`: those errors are raised while the
    gating state is read."""

    fail: dict[uuid.UUID, list[BaseException]] = field(default_factory=lambda: defaultdict(list))
    fail_in_gating: bool = False
    fail_every_batch: list[BaseException] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    results: Results = field(default_factory=lambda: Results("dlq"))

    async def decide(
        self,
        items: list[Authenticated],
        claims: Sequence[PartitionClaim],
        *,
        attempts: int,
        progress: Progress,
    ) -> list[Result]:
        stores = tuple(item.request.store_id for item in items)
        self.calls.append(Call(stores, attempts))
        if self.fail_every_batch and len(items) > 1:
            raise self.fail_every_batch.pop(0)
        for store in stores:
            if self.fail.get(store):
                progress.reading_gating = self.fail_in_gating
                raise self.fail[store].pop(0)
        now = datetime.now(UTC)
        verdicts = [
            Verdict(Status.PUBLISHED, None, store_url="https://s/x", published_at=now, publish=True)
            for _ in items
        ]
        return self.results.of_decisions(items, list(verdicts), attempts, now)
