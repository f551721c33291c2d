"""Idempotency: a request (its `event_id`) is decided once, however often it is read.

The rule, applied here before any other check of a batch (`decided_before`):
- an event id decided in an earlier transaction (its record in the ledger, `publish_requests`)
  gets the recorded outcome again, byte for byte, and nothing else happens (`Repeat`);
- an event id seen earlier in the same batch gets that first decision's outcome (`SameAs`).

What keeps it true around this rule, each where its I/O is:
- the record of a decision is written in the same database transaction as its effects
  (`repository.write_effects`), under the row locks of its stores, so no two transactions
  decide the same request; failed requests are not recorded, so a replay retries them;
- the outcome's own id is derived from the request's event id (`schemas.events.
  outcome_event_id`), so an outcome sent again is the same event to its readers;
- the Kafka side is one transaction per poll with the input offsets (`kafka_io`), so an
  outcome is read by `read_committed` readers once;
- the ledger is kept for `IDEMPOTENCY_RETENTION` (`ledger`, `ledger_plan`); a request read
  again after its record is gone is decided again, and its effects repeat nothing: a store
  published is `already_published`, and analytics rows are unique per request
  (`effects.AnalyticsRow.request_event_id`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import NamedTuple


class Repeat(NamedTuple):
    """A request decided before: its recorded outcome (JSON) is sent again, nothing else."""

    outcome_json: str


class SameAs(NamedTuple):
    """A request whose event id came earlier in the same batch: it gets that outcome again."""

    # The position in the batch of the first request with this event id.
    first: int


def decided_before(
    event_id: uuid.UUID,
    index: int,
    first_index: dict[uuid.UUID, int],
    recorded: Mapping[uuid.UUID, str],
) -> Repeat | SameAs | None:
    """What `event_id` at position `index` of a batch repeats, if anything; records its first
    position in `first_index` when it is new to the batch."""
    if event_id in first_index:
        return SameAs(first_index[event_id])
    first_index[event_id] = index
    prior = recorded.get(event_id)
    return Repeat(prior) if prior is not None else None
