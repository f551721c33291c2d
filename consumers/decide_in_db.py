"""One database transaction that decides requests: lock the claims and the stores, load
earlier outcomes, users and gating state in bulk, decide with the pure function, write the
effects. The retry flow (`consumers.retrying`) decides what to do when it fails."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from consumers import repository as repo
from consumers.decision import Facts, Verdict, decide_batch
from consumers.effects import Decided, effects_of
from consumers.errors import PartitionLost, PublishingPaused
from consumers.results import Authenticated, Result, Results
from consumers.retrying import Progress
from schemas.settings import Settings


class PostgresDecisions:
    """`consumers.retrying.DecisionStore` on PostgreSQL."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._results = Results(settings.topic_dlq)

    async def decide(
        self,
        items: list[Authenticated],
        claims: Sequence[repo.PartitionClaim],
        *,
        attempts: int,
        progress: Progress,
    ) -> list[Result]:
        settings = self._settings
        requests = [item.request for item in items]
        # lock_timeout and statement_timeout are set on the pool's connections (app.py).
        async with self._pool.acquire() as conn, conn.transaction():
            standing = await repo.lock_standing(conn, claims)
            if not standing.holds_claim:
                raise PartitionLost(", ".join(f"{c.topic}:{c.partition}" for c in claims))
            if standing.paused:
                raise PublishingPaused
            stores = await repo.lock_stores(conn, [r.store_id for r in requests])
            priors = await repo.prior_outcomes(conn, [r.event_id for r in requests])
            users = await repo.existing_users(conn, [r.user_id for r in requests])
            progress.reading_gating = True
            gating = await repo.gating_state(
                conn, [r.user_id for r in requests], settings.publish_required_steps
            )
            progress.reading_gating = False
            now = datetime.now(UTC)
            snapshot = Facts(users, stores, gating, settings.publish_required_steps, priors)
            decisions = decide_batch(requests, snapshot, now=now, base_url=settings.store_base_url)
            results = self._results.of_decisions(items, decisions, attempts, now)
            decided = [
                Decided(
                    item.request,
                    decision,
                    result.outcome,
                    result.outcome_json,
                    item.record.partition,
                    item.record.offset,
                )
                for item, decision, result in zip(items, decisions, results, strict=True)
                if isinstance(decision, Verdict)
            ]
            await repo.write_effects(conn, effects_of(decided, gating.active_versions))
        return results
