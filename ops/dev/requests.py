"""The kinds of right and wrong requests the demo and the bench mix: who a request of each
kind names. Requests themselves are built by `schemas.requests`."""

from __future__ import annotations

import uuid


def parties(
    kind: str, owner_id: uuid.UUID, store_id: uuid.UUID, other_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID]:
    """The (user_id, store_id) a request of `kind` names, for a store `store_id` owned by
    `owner_id` and another creator `other_id`: the demo's and the bench's mixes of right
    and wrong requests share these kinds."""
    if kind == "other user's store":
        return (other_id if other_id != owner_id else uuid.uuid4()), store_id
    if kind == "unknown store":
        return owner_id, uuid.uuid4()
    if kind == "unknown user":
        return uuid.uuid4(), store_id
    return owner_id, store_id
