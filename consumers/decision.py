"""Whether a request is published, already published, gated or rejected: values in, values out.

The ordered checks of the contract after the raw-bytes screening: confirmation, user, store,
ownership, already published, gating, publish. No I/O here; the batch handler loads the
snapshot, calls `decide_batch` and writes what it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from consumers.idempotency import Repeat, SameAs, decided_before
from schemas.events import PublishRequested, Reason, Status


# NamedTuples for what is made per record (see consumers/outcomes.py).
class StoreState(NamedTuple):
    id: uuid.UUID
    owner_id: uuid.UUID
    slug: str
    published: bool
    store_url: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class GatingState:
    """What the gating check needs for a set of users.

    `active_versions`: step id -> its active definition's version (steps with none are absent).
    `done`: (user id, step id) pairs whose row for the active version has status `done`.
    """

    active_versions: Mapping[str, int]
    done: frozenset[tuple[uuid.UUID, str]]


@dataclass(frozen=True)
class Facts:
    """Everything the decisions of one batch read, loaded in bulk."""

    users: frozenset[uuid.UUID]
    stores: Mapping[uuid.UUID, StoreState]
    gating: GatingState
    required_steps: tuple[str, ...]
    prior_outcomes: Mapping[uuid.UUID, str] = field(default_factory=dict)


class Verdict(NamedTuple):
    status: Status
    reason: Reason | None
    missing_steps: tuple[str, ...] = ()
    store_url: str | None = None
    published_at: datetime | None = None
    # The side effect to carry out: make this store public.
    publish: bool = False


Decision = Verdict | Repeat | SameAs


def missing_steps(
    user_id: uuid.UUID, required: Sequence[str], gating: GatingState
) -> tuple[str, ...]:
    """Every required step the user has not done at its active version, in configured order.

    A step with no active definition is missing for everyone: gating fails closed.
    `skipped` never satisfies a step, since only `done` rows are in `gating.done`.
    """
    return tuple(
        step
        for step in required
        if step not in gating.active_versions or (user_id, step) not in gating.done
    )


def store_url_for(store: StoreState, base_url: str) -> str:
    return store.store_url or f"{base_url.rstrip('/')}/{store.slug}"


def decide(
    request: PublishRequested,
    *,
    user_exists: bool,
    store: StoreState | None,
    gating: GatingState,
    required_steps: Sequence[str],
    now: datetime,
    base_url: str,
) -> Verdict:
    """The contract's checks, in the contract's order, for one authenticated request."""
    if not request.confirm_publish:
        return Verdict(Status.REJECTED, Reason.NOT_CONFIRMED)
    if not user_exists:
        return Verdict(Status.REJECTED, Reason.USER_NOT_FOUND)
    if store is None:
        return Verdict(Status.REJECTED, Reason.STORE_NOT_FOUND)
    if store.owner_id != request.user_id:
        return Verdict(Status.REJECTED, Reason.FORBIDDEN)
    if store.published:
        return Verdict(
            Status.ALREADY_PUBLISHED,
            None,
            store_url=store_url_for(store, base_url),
            published_at=store.published_at,
        )
    missing = missing_steps(request.user_id, required_steps, gating)
    if missing:
        return Verdict(Status.GATED, Reason.MISSING_STEPS, missing_steps=missing)
    return Verdict(
        Status.PUBLISHED,
        None,
        store_url=store_url_for(store, base_url),
        published_at=now,
        publish=True,
    )


def decide_batch(
    requests: Sequence[PublishRequested],
    snapshot: Facts,
    *,
    now: datetime,
    base_url: str,
) -> list[Decision]:
    """Decide a batch in order, as if one request at a time.

    A store published earlier in the batch is `already_published` for the requests after it;
    an event id seen before (recorded, or earlier in the batch) repeats its first decision
    (`consumers.idempotency`).
    """
    stores = dict(snapshot.stores)
    first_index: dict[uuid.UUID, int] = {}
    results: list[Decision] = []
    for index, request in enumerate(requests):
        again = decided_before(request.event_id, index, first_index, snapshot.prior_outcomes)
        if again is not None:
            results.append(again)
            continue
        store = stores.get(request.store_id)
        verdict = decide(
            request,
            user_exists=request.user_id in snapshot.users,
            store=store,
            gating=snapshot.gating,
            required_steps=snapshot.required_steps,
            now=now,
            base_url=base_url,
        )
        if verdict.publish and store is not None:
            stores[store.id] = store._replace(
                published=True, store_url=verdict.store_url, published_at=now
            )
        results.append(verdict)
    return results
