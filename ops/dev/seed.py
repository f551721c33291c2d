"""A realistic creator population for the demo and the benchmark, written with COPY."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

STEP_TITLES = {
    "payments": "Set up payments",
    "email_verification": "Verify your email",
    "theme": "Choose a theme",
    "product": "Add a first product",
}


@dataclass(frozen=True)
class Creator:
    user_id: uuid.UUID
    store_id: uuid.UUID
    kind: str


@dataclass
class Population:
    creators: list[Creator] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Creator]:
        return [c for c in self.creators if c.kind == kind]


# Most creators are ready; some lack payments, some several steps, some skipped payments,
# and some stores are live already.
DEFAULT_MIX = (
    ("ready", 0.70),
    ("no_payments", 0.12),
    ("several_missing", 0.05),
    ("skipped_payments", 0.03),
    ("published", 0.10),
)


async def ensure_step_definitions(conn: asyncpg.Connection, steps: Sequence[str]) -> None:
    for weight, step in enumerate(steps):
        await conn.execute(
            """INSERT INTO onboarding_step_definitions (id, version, title, required, weight)
               VALUES ($1, 1, $2, true, $3) ON CONFLICT (id, version) DO NOTHING""",
            step,
            STEP_TITLES.get(step, step),
            weight,
        )


def _steps_for(kind: str, required: Sequence[str], rng: random.Random) -> list[tuple[str, str]]:
    """(step, status) rows for a creator of this kind."""
    if kind in ("ready", "published"):
        return [(step, "done") for step in required]
    if kind == "no_payments":
        return [(step, "done") for step in required if step != "payments"]
    if kind == "skipped_payments":
        return [(step, "skipped" if step == "payments" else "done") for step in required]
    # several_missing: at most one step done
    done = rng.sample(list(required), k=min(1, len(required))) if rng.random() < 0.5 else []
    return [(step, "done") for step in done]


async def seed_population(
    conn: asyncpg.Connection,
    count: int,
    *,
    required_steps: Sequence[str],
    mix: Sequence[tuple[str, float]] = DEFAULT_MIX,
    seed: int | None = None,
    base_url: str = "https://shops.example.com",
) -> Population:
    """`count` creators with stores and onboarding rows, in three COPYs."""
    rng = random.Random(seed)
    await ensure_step_definitions(conn, required_steps)
    kinds = [kind for kind, _ in mix]
    weights = [weight for _, weight in mix]
    now = datetime.now(UTC)
    population = Population()
    users: list[tuple[uuid.UUID, str, datetime]] = []
    stores: list[tuple[object, ...]] = []
    onboarding: list[tuple[object, ...]] = []
    for kind in rng.choices(kinds, weights=weights, k=count):
        user_id, store_id = uuid.uuid4(), uuid.uuid4()
        slug = f"shop-{store_id.hex[:12]}"
        users.append((user_id, f"{user_id.hex[:16]}@creators.example.com", now))
        published = kind == "published"
        stores.append(
            (
                store_id,
                user_id,
                slug,
                "published" if published else "draft",
                f"{base_url}/{slug}" if published else None,
                now if published else None,
            )
        )
        for step, status in _steps_for(kind, required_steps, rng):
            onboarding.append((user_id, step, 1, status, now if status == "done" else None, now))
        population.creators.append(Creator(user_id, store_id, kind))
    await conn.copy_records_to_table("users", records=users, columns=["id", "email", "created_at"])
    await conn.copy_records_to_table(
        "stores",
        records=stores,
        columns=["id", "owner_id", "slug", "status", "store_url", "published_at"],
    )
    await conn.copy_records_to_table(
        "user_onboarding",
        records=onboarding,
        columns=["user_id", "step_id", "version", "status", "completed_at", "updated_at"],
    )
    return population
