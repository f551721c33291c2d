"""What the pipeline leaves in the database per request: the idempotency ledger (every
partition of `publish_requests`, indexes and TOAST included) and the analytics rows
(`onboarding_events`), divided by the requests decided."""

from __future__ import annotations

import asyncpg


async def bytes_per_request_line(dsn: str, requests: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)
                         FROM pg_inherits
                        WHERE inhparent = 'publish_requests'::regclass) AS ledger,
                      pg_total_relation_size('onboarding_events') AS analytics"""
        )
    finally:
        await conn.close()
    assert row is not None
    ledger, analytics = int(row["ledger"]), int(row["analytics"])
    per = max(requests, 1)
    return (
        f"  database per request: {(ledger + analytics) / per:.0f} bytes "
        f"(ledger {ledger / per:.0f}, analytics {analytics / per:.0f}; {requests} requests, "
        f"ledger {ledger / 1e6:.1f} MB, analytics {analytics / 1e6:.1f} MB)"
    )
