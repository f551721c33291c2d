"""How a batch tells the loop that it was not decided, and why. Which failures those are is
decided once, in `ops.runtime.faults`."""

from __future__ import annotations

from ops.runtime.faults import describe, sqlstate


class DecideSeparately(Exception):
    """A poll's one transaction for all its partitions did not go through as a whole (a
    partition lost, a conflict, one request's data); nothing of it was written, and each
    partition is decided on its own instead, as a larger poll is."""


class HandedBack(Exception):
    """The batch was not decided or not committed; it goes back to Kafka untouched."""


class BatchHandedBack(HandedBack):
    """The batch's Kafka transaction failed; it was aborted and the batch goes back to Kafka."""


class PartitionLost(HandedBack):
    """Another consumer claimed the partition: this one must not write for it any more."""


class PublishingPaused(HandedBack):
    """The pause switch is on: the batch is handed back untouched."""


class DatabaseUnavailable(HandedBack):
    """PostgreSQL did not answer: the batch is handed back and the consumer waits for it."""


class DatabaseFault(HandedBack):
    """The database (or our own code) refuses every request alike: a missing column, a
    revoked privilege, a read-only standby, a bug. No request is failed for it: the batch is
    handed back, the partitions pause, and the batch is tried again until it goes through."""

    def __init__(self, cause: BaseException, summary: str | None = None) -> None:
        self.sqlstate = sqlstate(cause)
        self.error = summary or describe(cause)
        super().__init__(self.error)
