"""The dead-letter record's added headers, as the contract names them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Reason

MAX_ERROR_BYTES = 1024
REPLAY_COUNT_HEADER = "replay.count"

# Headers the pipeline adds; a replay strips these before re-sending the original headers.
DLQ_HEADER_NAMES = (
    "dlq.reason",
    "dlq.error",
    "dlq.source.topic",
    "dlq.source.partition",
    "dlq.source.offset",
    "dlq.attempts",
    "dlq.failed_at",
    "correlation_id",
)


def truncate_utf8(text: str, limit: int = MAX_ERROR_BYTES) -> str:
    """At most `limit` bytes of UTF-8, never cutting a character in half."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class DeadLetterHeaders(BaseModel):
    """Why and where from: added to the original headers of a dead-lettered request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason
    error: str = Field(max_length=MAX_ERROR_BYTES)
    source_topic: str
    source_partition: int
    source_offset: int
    attempts: int
    failed_at: datetime
    correlation_id: str

    def to_kafka(self) -> list[tuple[str, bytes]]:
        values = (
            self.reason.value,
            truncate_utf8(self.error),
            self.source_topic,
            str(self.source_partition),
            str(self.source_offset),
            str(self.attempts),
            self.failed_at.isoformat(),
            self.correlation_id,
        )
        return [
            (name, value.encode("utf-8"))
            for name, value in zip(DLQ_HEADER_NAMES, values, strict=True)
        ]

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]]) -> DeadLetterHeaders:
        found = {name: value.decode("utf-8", errors="replace") for name, value in headers}
        return cls(
            reason=Reason(found["dlq.reason"]),
            error=found["dlq.error"],
            source_topic=found["dlq.source.topic"],
            source_partition=int(found["dlq.source.partition"]),
            source_offset=int(found["dlq.source.offset"]),
            attempts=int(found["dlq.attempts"]),
            failed_at=datetime.fromisoformat(found["dlq.failed_at"]),
            correlation_id=found["correlation_id"],
        )


def original_headers(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers the request arrived with: the dead-letter ones and replay.count removed."""
    added = {*DLQ_HEADER_NAMES, REPLAY_COUNT_HEADER}
    return [(name, value) for name, value in headers if name not in added]


def replay_count(headers: list[tuple[str, bytes]]) -> int:
    for name, value in headers:
        if name == REPLAY_COUNT_HEADER:
            try:
                return int(value.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return 0
    return 0
