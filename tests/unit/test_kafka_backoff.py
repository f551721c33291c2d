"""The transactional writer shortens aiokafka's wait after CONCURRENT_TRANSACTIONS
(consumers/kafka_io.py). If an aiokafka upgrade moves or renames what is set, this fails
instead of the setting silently doing nothing."""

from __future__ import annotations

import inspect

import pytest
from aiokafka.producer import sender

from consumers import kafka_io


def test_the_concurrent_transactions_backoff_is_shortened_where_aiokafka_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender, "BACKOFF_OVERRIDE", 0.02)
    kafka_io.shorten_concurrent_transactions_backoff()
    assert sender.BACKOFF_OVERRIDE == kafka_io.CONCURRENT_TRANSACTIONS_BACKOFF_S
    assert kafka_io.CONCURRENT_TRANSACTIONS_BACKOFF_S < 0.02


def test_aiokafka_still_answers_concurrent_transactions_with_that_constant() -> None:
    handler = inspect.getsource(sender.AddPartitionsToTxnHandler.handle_response)
    # Read as a global at each retry, so the module attribute set above takes effect.
    assert "ConcurrentTransactions" in handler
    assert "return BACKOFF_OVERRIDE" in handler
