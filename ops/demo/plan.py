"""The demo's requests: mostly creators publishing their own store, with the refusals the
contract names, in known proportions."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from ops.dev.requests import parties
from ops.dev.seed import Population
from schemas.requests import publish_request, request_value
from schemas.signing import signature_headers


@dataclass
class Plan:
    """The requests to send, and what kind each one is."""

    values: list[tuple[bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)


def plan_demo_requests(
    population: Population, count: int, secret: bytes, rng: random.Random, plan: Plan
) -> None:
    """Add `count` requests to the plan: mostly creators publishing their own store, with the
    refusals the contract names."""
    creators = population.creators
    kinds = [
        ("own store", 0.82),
        ("other user's store", 0.04),
        ("unsigned", 0.03),
        ("malformed", 0.03),
        ("not confirmed", 0.02),
        ("unknown store", 0.02),
        ("unknown user", 0.02),
        ("redelivered", 0.02),
    ]
    sent_values = [value for value, _ in plan.values if value is not None]
    for kind in rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds], k=count):
        if kind == "redelivered" and not sent_values:
            kind = "own store"
        owner, other = rng.choice(creators), rng.choice(creators)
        user_id, store_id = parties(kind, owner.user_id, owner.store_id, other.user_id)
        value = request_value(
            publish_request(
                user_id,
                store_id,
                correlation_id=f"demo-{uuid.uuid4().hex[:12]}",
                confirm_publish=kind != "not confirmed",
                notify_customers=rng.random() < 0.3,
            )
        )
        if kind == "malformed":
            value = value[: len(value) // 2]
        elif kind == "redelivered":
            value = rng.choice(sent_values)
        sent_values.append(value)
        headers = signature_headers(value, None if kind == "unsigned" else secret)
        plan.values.append((value, headers))
        plan.kinds[kind] += 1
