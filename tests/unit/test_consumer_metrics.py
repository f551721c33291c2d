"""The consumer's histograms observed a batch at a time hold what one observation per value
would have: the same bucket counts and the same sum."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from consumers.metrics import observe_all

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def pair() -> tuple[Histogram, Histogram]:
    made = [
        Histogram("x_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry()) for _ in range(2)
    ]
    return made[0], made[1]


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1, max_value=100, allow_nan=False),
            st.sampled_from(BUCKETS),  # on a bound: in that bucket, as `observe` puts it
        ),
        max_size=50,
    )
)
def test_a_batch_observed_at_once_equals_each_value_observed(values: list[float]) -> None:
    one_by_one, at_once = pair()
    for value in values:
        one_by_one.observe(value)
    observe_all(at_once, values)
    expected, got = samples(one_by_one), samples(at_once)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, abs_tol=1e-9), key


def test_nan_is_counted_in_no_bucket_as_observe_counts_it() -> None:
    one_by_one, at_once = pair()
    for value in (0.2, math.nan):
        one_by_one.observe(value)
    observe_all(at_once, [0.2, math.nan])
    buckets = {k: v for k, v in samples(one_by_one).items() if k[0].endswith("_bucket")}
    assert {k: v for k, v in samples(at_once).items() if k in buckets} == buckets
