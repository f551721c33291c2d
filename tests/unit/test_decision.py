"""The publish decision: the contract's checks in the contract's order, for one request and a batch.

`skipped` rows never reach `GatingState.done` (the repository selects `done` only; the
integration test `gated_skipped` guards that query); here the pure rule is that a step not
done at its active version is missing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from consumers.decision import (
    Facts,
    GatingState,
    Repeat,
    SameAs,
    StoreState,
    Verdict,
    decide,
    decide_batch,
    missing_steps,
)
from schemas.events import REASONS_BY_STATUS, PublishRequested, Reason, Status
from schemas.requests import publish_request

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)
BASE_URL = "https://shops.example.com/"
OWNER = uuid.UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
STRANGER = uuid.UUID("b1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
STORE = uuid.UUID("5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a")
ALL_STEPS = ("payments", "theme", "product", "email_verification")


def request(
    *,
    user_id: uuid.UUID = OWNER,
    store_id: uuid.UUID = STORE,
    confirm: bool = True,
    event_id: uuid.UUID | None = None,
) -> PublishRequested:
    return publish_request(
        user_id, store_id, event_id=event_id, occurred_at=EARLIER, confirm_publish=confirm
    )


def store(
    *, owner: uuid.UUID = OWNER, published: bool = False, store_url: str | None = None
) -> StoreState:
    return StoreState(
        id=STORE,
        owner_id=owner,
        slug="my-shop",
        published=published,
        store_url=store_url,
        published_at=EARLIER if published else None,
    )


def gating(
    done: Sequence[str] = ALL_STEPS,
    *,
    user_id: uuid.UUID = OWNER,
    active: Sequence[str] = ALL_STEPS,
) -> GatingState:
    return GatingState(
        active_versions={step: 2 for step in active},
        done=frozenset((user_id, step) for step in done),
    )


def verdict(
    req: PublishRequested | None = None,
    *,
    user_exists: bool = True,
    store_exists: bool = True,
    store_state: StoreState | None = None,
    gating_state: GatingState | None = None,
    required: Sequence[str] = ("payments",),
) -> Verdict:
    """`decide` at NOW; the owner's draft store and every step done unless told otherwise."""
    return decide(
        req or request(),
        user_exists=user_exists,
        store=(store_state or store()) if store_exists else None,
        gating=gating_state if gating_state is not None else gating(),
        required_steps=required,
        now=NOW,
        base_url=BASE_URL,
    )


def refusal_of(result: Verdict) -> tuple[Status, Reason | None]:
    return result.status, result.reason


# --- decide: each branch, in order -------------------------------------------------------


def test_not_confirmed_is_decided_before_any_user_or_store_lookup() -> None:
    result = verdict(
        request(confirm=False),
        user_exists=False,
        store_exists=False,
        gating_state=GatingState({}, frozenset()),
    )
    assert refusal_of(result) == (Status.REJECTED, Reason.NOT_CONFIRMED)
    assert not result.publish


def test_unknown_user_is_user_not_found_even_when_the_store_is_missing_too() -> None:
    result = verdict(user_exists=False, store_exists=False)
    assert refusal_of(result) == (Status.REJECTED, Reason.USER_NOT_FOUND)


def test_unknown_store_is_store_not_found() -> None:
    result = verdict(store_exists=False)
    assert refusal_of(result) == (Status.REJECTED, Reason.STORE_NOT_FOUND)


def test_only_the_owner_may_publish_anyone_else_is_forbidden() -> None:
    result = verdict(request(user_id=STRANGER), gating_state=gating(user_id=STRANGER))
    assert refusal_of(result) == (Status.REJECTED, Reason.FORBIDDEN)
    assert not result.publish


def test_forbidden_is_decided_before_already_published() -> None:
    result = verdict(request(user_id=STRANGER), store_state=store(published=True))
    assert refusal_of(result) == (Status.REJECTED, Reason.FORBIDDEN)
    assert result.store_url is None


def test_published_store_is_already_published_with_its_url_and_date_not_an_error() -> None:
    result = verdict(store_state=store(published=True, store_url="https://custom.example/x"))
    assert refusal_of(result) == (Status.ALREADY_PUBLISHED, None)
    assert result.store_url == "https://custom.example/x"
    assert result.published_at == EARLIER
    assert not result.publish


def test_already_published_is_decided_before_gating() -> None:
    result = verdict(store_state=store(published=True), gating_state=gating(done=()))
    assert result.status is Status.ALREADY_PUBLISHED
    assert result.missing_steps == ()


def test_gated_lists_every_missing_step_in_configured_order() -> None:
    required = ("theme", "payments", "product", "email_verification")
    result = verdict(gating_state=gating(done=("payments",)), required=required)
    assert refusal_of(result) == (Status.GATED, Reason.MISSING_STEPS)
    assert result.missing_steps == ("theme", "product", "email_verification")
    assert not result.publish
    assert result.store_url is None


def test_step_not_done_at_its_active_version_is_missing_so_skipped_never_satisfies_it() -> None:
    # A skipped row, or a done row at an old version, leaves no (user, step) pair in `done`.
    result = verdict(gating_state=gating(done=()), required=("payments",))
    assert result.missing_steps == ("payments",)


def test_another_users_done_step_does_not_satisfy_the_owners_gate() -> None:
    result = verdict(gating_state=gating(user_id=STRANGER))
    assert result.status is Status.GATED


def test_required_step_with_no_active_definition_blocks_even_if_marked_done() -> None:
    no_active_theme = GatingState(
        active_versions={"payments": 1},
        done=frozenset({(OWNER, "payments"), (OWNER, "theme")}),
    )
    result = verdict(gating_state=no_active_theme, required=("payments", "theme"))
    assert refusal_of(result) == (Status.GATED, Reason.MISSING_STEPS)
    assert result.missing_steps == ("theme",)


def test_steps_not_required_do_not_gate_even_when_not_done() -> None:
    # theme, product and email_verification are active but neither done nor required.
    result = verdict(gating_state=gating(done=("payments",)), required=("payments",))
    assert result.status is Status.PUBLISHED


def test_no_required_steps_means_no_gate() -> None:
    result = verdict(gating_state=GatingState({}, frozenset()), required=())
    assert result.status is Status.PUBLISHED


def test_published_sets_the_store_url_the_publication_time_and_the_publish_effect() -> None:
    result = verdict()
    assert refusal_of(result) == (Status.PUBLISHED, None)
    assert result.publish is True
    assert result.store_url == "https://shops.example.com/my-shop"
    assert result.published_at == NOW
    assert result.missing_steps == ()


def test_a_store_keeps_its_own_url_when_it_has_one() -> None:
    assert verdict(store_state=store(store_url="https://mine.example")).store_url == (
        "https://mine.example"
    )


def test_missing_steps_is_empty_when_every_active_required_step_is_done() -> None:
    assert missing_steps(OWNER, ALL_STEPS, gating()) == ()


# --- decide_batch -----------------------------------------------------------------------


def snapshot(
    *,
    stores: Sequence[StoreState] = (),
    users: frozenset[uuid.UUID] = frozenset({OWNER, STRANGER}),
    prior: dict[uuid.UUID, str] | None = None,
) -> Facts:
    return Facts(
        users=users,
        stores={s.id: s for s in (stores or (store(),))},
        gating=gating(),
        required_steps=("payments",),
        prior_outcomes=prior or {},
    )


def batch(requests: Sequence[PublishRequested], snap: Facts | None = None) -> list[object]:
    return list(decide_batch(requests, snap or snapshot(), now=NOW, base_url=BASE_URL))


def test_store_published_earlier_in_the_batch_is_already_published_for_later_requests() -> None:
    first, second = batch([request(), request()])
    assert isinstance(first, Verdict)
    assert isinstance(second, Verdict)
    assert (first.status, first.publish) == (Status.PUBLISHED, True)
    assert (second.status, second.publish) == (Status.ALREADY_PUBLISHED, False)
    assert second.store_url == first.store_url
    assert second.published_at == NOW


def test_ten_requests_with_different_event_ids_for_one_store_publish_it_once() -> None:
    decisions = batch([request() for _ in range(10)])
    assert all(isinstance(d, Verdict) for d in decisions)
    verdicts = [d for d in decisions if isinstance(d, Verdict)]
    assert sum(v.publish for v in verdicts) == 1
    assert Counter(v.status for v in verdicts) == {
        Status.PUBLISHED: 1,
        Status.ALREADY_PUBLISHED: 9,
    }


def test_refused_request_earlier_in_the_batch_does_not_publish_the_store() -> None:
    decisions = batch([request(user_id=STRANGER), request(confirm=False), request()])
    statuses = [d.status for d in decisions if isinstance(d, Verdict)]
    assert statuses == [Status.REJECTED, Status.REJECTED, Status.PUBLISHED]


def test_duplicate_event_id_in_the_batch_gets_same_as_its_first_occurrence() -> None:
    event_id = uuid.uuid4()
    decisions = batch([request(event_id=event_id), request(), request(event_id=event_id)])
    assert isinstance(decisions[0], Verdict)
    assert decisions[0].publish
    assert decisions[2] == SameAs(0)


def test_request_with_a_prior_outcome_gets_repeat_of_it_and_no_new_effect() -> None:
    event_id = uuid.uuid4()
    recorded = '{"status": "gated"}'
    decisions = batch([request(event_id=event_id), request()], snapshot(prior={event_id: recorded}))
    assert decisions[0] == Repeat(recorded)
    # The repeat published nothing, so the next request for the store still publishes it.
    assert isinstance(decisions[1], Verdict)
    assert decisions[1].status is Status.PUBLISHED


def test_redelivered_duplicate_of_a_prior_outcome_repeats_then_refers_to_it() -> None:
    event_id = uuid.uuid4()
    decisions = batch(
        [request(event_id=event_id), request(event_id=event_id)],
        snapshot(prior={event_id: "{}"}),
    )
    assert decisions == [Repeat("{}"), SameAs(0)]


def test_empty_batch_decides_nothing() -> None:
    assert batch([]) == []


# --- properties -------------------------------------------------------------------------

people = st.sampled_from([OWNER, STRANGER, uuid.UUID(int=7)])
step_lists = st.lists(st.sampled_from(ALL_STEPS), unique=True, max_size=4).map(tuple)


@st.composite
def store_states(draw: st.DrawFn, store_id: uuid.UUID = STORE) -> StoreState:
    published = draw(st.booleans())
    return StoreState(
        id=store_id,
        owner_id=draw(people),
        slug=draw(st.sampled_from(["a", "shop-b"])),
        published=published,
        store_url=draw(st.none() | st.just("https://custom.example/s")) if published else None,
        published_at=EARLIER if published else None,
    )


@st.composite
def gating_states(draw: st.DrawFn) -> GatingState:
    active = draw(step_lists)
    done = draw(st.frozensets(st.tuples(people, st.sampled_from(ALL_STEPS)), max_size=8))
    return GatingState({step: draw(st.integers(1, 3)) for step in active}, done)


@given(
    confirm=st.booleans(),
    user_id=people,
    user_exists=st.booleans(),
    store_state=st.none() | store_states(),
    gating_state=gating_states(),
    required=step_lists,
)
def test_any_request_gets_one_contract_status_and_reason_and_missing_steps_iff_gated(
    confirm: bool,
    user_id: uuid.UUID,
    user_exists: bool,
    store_state: StoreState | None,
    gating_state: GatingState,
    required: tuple[str, ...],
) -> None:
    result = verdict(
        request(user_id=user_id, confirm=confirm),
        user_exists=user_exists,
        store_exists=store_state is not None,
        store_state=store_state,
        gating_state=gating_state,
        required=required,
    )
    assert result.reason in REASONS_BY_STATUS[result.status]
    assert result.status is not Status.FAILED
    assert bool(result.missing_steps) == (result.status is Status.GATED)
    assert list(result.missing_steps) == [s for s in required if s in result.missing_steps]
    assert result.publish == (result.status is Status.PUBLISHED)
    visible = result.status in (Status.PUBLISHED, Status.ALREADY_PUBLISHED)
    assert (result.store_url is not None) == visible
    assert (result.published_at is not None) == visible
    if result.publish:
        assert store_state is not None
        assert confirm
        assert user_exists
        assert store_state.owner_id == user_id
        assert not store_state.published
        assert all((user_id, s) in gating_state.done for s in required)
        assert all(s in gating_state.active_versions for s in required)


@given(
    requests=st.lists(
        st.builds(
            request,
            user_id=people,
            store_id=st.sampled_from([STORE, uuid.UUID(int=99)]),
            confirm=st.booleans(),
            event_id=st.sampled_from([uuid.UUID(int=n) for n in range(1, 6)]),
        ),
        max_size=12,
    ),
    store_state=store_states(),
    prior=st.dictionaries(st.sampled_from([uuid.UUID(int=n) for n in (1, 2)]), st.just("{}")),
)
def test_a_batch_decides_every_request_once_and_publishes_each_store_at_most_once(
    requests: list[PublishRequested], store_state: StoreState, prior: dict[uuid.UUID, str]
) -> None:
    snap = Facts(
        users=frozenset({OWNER, STRANGER}),
        stores={STORE: store_state},
        gating=gating(user_id=store_state.owner_id),
        required_steps=("payments",),
        prior_outcomes=prior,
    )
    decisions = decide_batch(requests, snap, now=NOW, base_url=BASE_URL)
    assert len(decisions) == len(requests)
    published = Counter(
        r.store_id
        for r, d in zip(requests, decisions, strict=True)
        if isinstance(d, Verdict) and d.publish
    )
    assert all(count == 1 for count in published.values())
    if store_state.published:
        assert STORE not in published
    for index, (req, decision) in enumerate(zip(requests, decisions, strict=True)):
        if isinstance(decision, SameAs):
            assert decision.first < index
            assert requests[decision.first].event_id == req.event_id
        elif isinstance(decision, Repeat):
            assert req.event_id in prior
        else:
            assert req.event_id not in prior
            assert decision.reason in REASONS_BY_STATUS[decision.status]
