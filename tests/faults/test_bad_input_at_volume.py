"""Bad input at volume: generated payloads mixed into a run of good requests."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from consumers.screening import Refusal, screen
from ops.runtime.topics import ensure_topics
from schemas.events import Reason, Status
from tests.fixtures.creators import MakeCreators
from tests.fixtures.settings import MakeSettings
from tests.helpers.support import (
    encode,
    outcomes_of,
    producer_for,
    read_topic,
    request_body,
    running_consumer,
)

MAX_BYTES = 4096
JUNK = 300

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(
        ["'; DROP TABLE stores; --", "\u202e\u0000\ufeff", "\U0001d518\U0001d52b\U0001d526", "NaN"]
    ),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _almost_valid(draw: st.DrawFn) -> bytes:
    """A request with one field broken, added or dropped."""
    body: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": str(uuid.uuid4()),
        "store_id": str(uuid.uuid4()),
        "confirm_publish": True,
    }
    field = draw(st.sampled_from([*body, "extra"]))
    if field == "extra" or draw(st.booleans()):
        body[field] = draw(_json)
    else:
        body.pop(field)
    return json.dumps(body).encode()


def _weird_but_valid(draw: st.DrawFn) -> bytes:
    """A well-formed request whose text is odd: it must reach the database and be answered."""
    correlation = draw(
        st.text(min_size=1, max_size=128) | st.sampled_from(["'; DROP TABLE stores; --", "%s%n"])
    )
    body = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "correlation_id": correlation,
        "user_id": str(uuid.uuid4()),
        "store_id": str(uuid.uuid4()),
        "confirm_publish": True,
    }
    return json.dumps(body).encode()


def _payload(kind: int, draw: st.DrawFn) -> bytes:
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return json.dumps(draw(_json)).encode()
    if kind == 2:
        depth = draw(st.integers(min_value=100, max_value=MAX_BYTES // 2))
        return b"[" * depth + b"]" * depth
    if kind == 3:
        size = draw(st.integers(min_value=MAX_BYTES - 1, max_value=MAX_BYTES * 4))
        return b'"' + b"x" * (size - 2) + b'"'
    if kind == 4:
        return draw(st.text(max_size=100)).encode("utf-16")
    if kind == 5:
        return _almost_valid(draw)
    return _weird_but_valid(draw)


KINDS = 7


def draw_payloads(count: int) -> list[bytes]:
    drawn: list[bytes] = []

    # One payload per example: hypothesis varies its examples, and the first is the plainest.
    @given(st.integers(min_value=0, max_value=KINDS - 1), st.data())
    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(kind: int, data: st.DataObject) -> None:
        drawn.append(_payload(kind, data.draw))

    collect()
    return drawn


async def test_generated_bad_input_gets_its_reason_and_good_requests_keep_flowing(
    make_settings: MakeSettings, database_url: str, make_creators: MakeCreators
) -> None:
    settings_ = make_settings(max_event_bytes=MAX_BYTES, topic_partitions=1)
    await ensure_topics(settings_)
    good = await make_creators(30)
    junk = draw_payloads(JUNK)
    # The oracle is the pure screening: what it refuses, the pipeline must refuse the same way;
    # what it accepts names unknown users, so the pipeline answers user_not_found.
    expected: list[Reason | None] = []
    values: list[bytes] = []
    for index, value in enumerate(junk):
        verdict = screen(value, (), max_bytes=MAX_BYTES, secret=None)
        expected.append(verdict.reason if isinstance(verdict, Refusal) else Reason.USER_NOT_FOUND)
        values.append(value)
        if index % 10 == 0:
            values.append(encode(request_body(good[index // 10])))
            expected.append(None)
    async with producer_for(settings_) as producer:
        for value in values:
            await producer.send(settings_.topic_requests, value=value, key=b"k")
        await producer.flush()
    async with running_consumer(settings_):
        outcomes = outcomes_of(
            await read_topic(settings_, settings_.topic_outcomes, expect=len(values))
        )
    assert [o.reason for o in outcomes] == expected
    assert Counter(o.status for o in outcomes if o.reason is None) == {Status.PUBLISHED: 30}
    dead = await read_topic(
        settings_, settings_.topic_dlq, expect=sum(r is not None for r in expected)
    )
    assert len(dead) == sum(r is not None for r in expected)
    print(
        f"\n{len(values)} records: "
        + ", ".join(
            f"{reason.value if reason else 'published'} {count}"
            for reason, count in Counter(expected).most_common()
        )
    )
