"""Dead letters as the on-call tools see them, and the filters that select them.

Pure: records come in as plain values (read by `ops.oncall.topic_reader`), selections go out. The
same selection (filters, then oldest first, then `--limit`) serves `list`, `stats` and
`replay`, so what an operator lists is exactly what the same flags would replay.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from ops.oncall.topic_reader import RawRecord
from schemas.dead_letter import DLQ_HEADER_NAMES, DeadLetterHeaders, replay_count
from schemas.events import Reason

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days"}


def parse_moment(text: str, now: datetime) -> datetime:
    """`2h`, `30m`, `1d`, `1w` ago, or an ISO 8601 timestamp (UTC when it has no offset)."""
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2).lower()
        if unit == "w":
            return now - timedelta(weeks=amount)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration like 2h, 30m, 1d nor an ISO timestamp "
            "like 2026-01-31T14:00:00+01:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DeadLetter(RawRecord):
    """One record of the dead-letter topic: the request as received, and why it failed."""

    added: DeadLetterHeaders | None  # None when the dlq.* headers are missing or malformed

    @classmethod
    def from_raw(cls, raw: RawRecord) -> DeadLetter:
        try:
            added: DeadLetterHeaders | None = DeadLetterHeaders.from_kafka(list(raw.headers))
        except (KeyError, ValueError, ValidationError):
            added = None
        return cls(**vars(raw), added=added)

    @property
    def kafka_time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> Reason | None:
        return self.added.reason if self.added else None

    @property
    def error(self) -> str:
        return self.added.error if self.added else "(no dlq.* headers)"

    @property
    def failed_at(self) -> datetime:
        if self.added is None:
            return self.kafka_time
        failed = self.added.failed_at
        return failed.astimezone(UTC) if failed.tzinfo is not None else failed.replace(tzinfo=UTC)

    @property
    def correlation_id(self) -> str | None:
        return self.added.correlation_id if self.added else None

    @property
    def store_id(self) -> str:
        return self.key.decode("utf-8", errors="replace") if self.key is not None else ""

    @property
    def replay_count(self) -> int:
        return replay_count(list(self.headers))

    @property
    def request_identity(self) -> str:
        """Same key and value bytes: the same request, however often it was dead-lettered."""
        digest = hashlib.sha256()
        for part in (self.key or b"", self.value or b""):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def dlq_headers(self) -> dict[str, str]:
        return {
            name: value.decode("utf-8", errors="replace")
            for name, value in self.headers
            if name in DLQ_HEADER_NAMES
        }


@dataclass(frozen=True)
class Filters:
    """What the operator asked for; every filter given must match (AND)."""

    reasons: frozenset[Reason] = field(default_factory=frozenset)
    since: datetime | None = None
    until: datetime | None = None
    store_id: str | None = None
    correlation_id: str | None = None
    limit: int | None = None

    def matches(self, record: DeadLetter) -> bool:
        if self.reasons and record.reason not in self.reasons:
            return False
        if self.since is not None and record.failed_at < self.since:
            return False
        if self.until is not None and record.failed_at > self.until:
            return False
        if self.store_id is not None and record.store_id != self.store_id:
            return False
        return self.correlation_id is None or record.correlation_id == self.correlation_id

    def to_json(self) -> str:
        """As recorded in `dlq_replays.filters`: only the filters given."""
        given: dict[str, object] = {}
        if self.reasons:
            given["reason"] = sorted(reason.value for reason in self.reasons)
        if self.since is not None:
            given["since"] = self.since.isoformat()
        if self.until is not None:
            given["until"] = self.until.isoformat()
        if self.store_id is not None:
            given["store_id"] = self.store_id
        if self.correlation_id is not None:
            given["correlation_id"] = self.correlation_id
        if self.limit is not None:
            given["limit"] = self.limit
        return json.dumps(given, sort_keys=True)


def select(records: Iterable[DeadLetter], filters: Filters) -> list[DeadLetter]:
    """The records matching `filters`, oldest failure first, at most `filters.limit`."""
    chosen = sorted(
        (record for record in records if filters.matches(record)),
        key=lambda record: (record.failed_at, record.partition, record.offset),
    )
    return chosen if filters.limit is None else chosen[: filters.limit]


def latest_by_request(records: Iterable[DeadLetter]) -> dict[str, DeadLetter]:
    """Per request, its most recent dead letter: the highest replay.count, then the latest.

    Kafka keeps every earlier copy; only the latest says how often the request was replayed.
    """
    latest: dict[str, DeadLetter] = {}
    for record in records:
        rank = (record.replay_count, record.failed_at, record.partition, record.offset)
        known = latest.get(record.request_identity)
        if known is None or rank > (
            known.replay_count,
            known.failed_at,
            known.partition,
            known.offset,
        ):
            latest[record.request_identity] = record
    return latest
