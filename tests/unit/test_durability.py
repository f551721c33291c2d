"""Whether a topic outlives the loss of one broker: `ops.oncall.durability`, the rule
`store-publish status` warns by."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.oncall.durability import durability_warnings, survives_one_broker_loss
from schemas.settings import default_min_insync_replicas


def test_three_replicas_with_min_isr_two_survive_the_loss_of_one_broker() -> None:
    assert survives_one_broker_loss(3, 2)
    assert durability_warnings({"requests": (3, 2)}, brokers=3) == []


def test_min_isr_one_loses_writes_its_leader_acknowledged_alone() -> None:
    (warning,) = durability_warnings({"requests": (3, 1)}, brokers=3)
    assert "acknowledged by its leader alone" in warning.describe()
    assert "TOPIC_MIN_INSYNC_REPLICAS" in warning.describe()


def test_min_isr_equal_to_the_replicas_refuses_writes_with_one_broker_down() -> None:
    (warning,) = durability_warnings({"outcomes": (2, 2)}, brokers=3)
    assert "refuses every write" in warning.describe()
    assert "reassign it to 3 replicas" in warning.describe()


def test_a_single_broker_is_never_warned_about() -> None:
    assert durability_warnings({"requests": (1, 1)}, brokers=1) == []


def test_only_the_topics_that_cannot_survive_are_named() -> None:
    found = durability_warnings({"a": (3, 2), "b": (1, 1), "c": (3, 1)}, brokers=3)
    assert [warning.topic for warning in found] == ["b", "c"]


@given(st.integers(min_value=3, max_value=50))
def test_the_default_min_isr_on_a_cluster_is_never_warned_about(replicas: int) -> None:
    min_isr = default_min_insync_replicas(replicas)
    assert durability_warnings({"t": (replicas, min_isr)}, brokers=replicas) == []


@given(st.integers(min_value=1, max_value=10), st.integers(min_value=1, max_value=10))
def test_a_warning_exactly_when_a_write_could_be_lost_or_refused(
    replicas: int, min_isr: int
) -> None:
    # The two ways one lost broker hurts: it was the leader and the only holder of writes it
    # acknowledged (min ISR 1), or the replicas left are fewer than a write must reach.
    loses_writes = min_isr < 2
    refuses_writes = replicas - 1 < min_isr
    warned = durability_warnings({"t": (replicas, min_isr)}, brokers=max(replicas, 2))
    assert bool(warned) == (loses_writes or refuses_writes)
