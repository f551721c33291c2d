"""The garbage collector tuned for a process that holds whole batches of records.

A poll of 5,000 requests makes about a hundred objects per request, and they live until
the poll's Kafka transaction commits, a second or more. With CPython's default threshold
(a collection of the youngest generation every 700 allocations) each collection finds
almost all of them alive, promotes them and, every hundredth time, walks the whole heap
again: a quarter of the consumer's CPU at large polls (docs/bench.md, "The garbage
collector"). Nothing the consumer makes is cyclic garbage in bulk, so it collects less
often; what it loaded at start-up (modules, settings, clients) is frozen out of every
collection.
"""

from __future__ import annotations

import gc

# Youngest generation every 50,000 net allocations (ten polls' worth of one partition's
# objects at most), the middle one every 20 of those, the oldest every 100 of those.
BATCH_THRESHOLDS = (50_000, 20, 100)


def tune_for_batches() -> None:
    """Freeze what exists now and collect at `BATCH_THRESHOLDS`; call once, at start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BATCH_THRESHOLDS)
