"""The consumer's collector settings (ops/runtime/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ops.runtime.collector import BATCH_THRESHOLDS, tune_for_batches


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_objects_collected_less_often() -> None:
    assert gc.get_threshold() != BATCH_THRESHOLDS
    tune_for_batches()
    assert gc.get_threshold() == BATCH_THRESHOLDS
    # What existed at start-up is out of every collection from now on.
    assert gc.get_freeze_count() > 1000


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_is_still_collected() -> None:
    tune_for_batches()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected_before = sum(s["collected"] for s in gc.get_stats())
    for _ in range(60_000):  # past the youngest generation's threshold
        a, b = Node(), Node()
        a.other, b.other = b, a
    assert sum(s["collected"] for s in gc.get_stats()) > collected_before
