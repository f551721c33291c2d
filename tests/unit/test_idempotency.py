"""The idempotency rule (consumers/idempotency.py): a recorded event id repeats its outcome,
an event id earlier in the batch repeats that decision, a new one is decided."""

from __future__ import annotations

import uuid

from consumers.idempotency import Repeat, SameAs, decided_before


def test_a_new_event_id_is_decided_and_its_first_position_kept() -> None:
    first: dict[uuid.UUID, int] = {}
    event = uuid.uuid4()
    assert decided_before(event, 4, first, {}) is None
    assert first == {event: 4}


def test_a_recorded_event_id_repeats_the_recorded_outcome_byte_for_byte() -> None:
    event = uuid.uuid4()
    recorded = {event: '{"status":"published"}'}
    assert decided_before(event, 0, {}, recorded) == Repeat('{"status":"published"}')


def test_an_event_id_earlier_in_the_batch_repeats_that_decision_even_if_recorded() -> None:
    first: dict[uuid.UUID, int] = {}
    event = uuid.uuid4()
    recorded = {event: "{}"}
    assert decided_before(event, 2, first, recorded) == Repeat("{}")
    assert decided_before(event, 7, first, recorded) == SameAs(2)
    assert decided_before(event, 9, first, {}) == SameAs(2)
