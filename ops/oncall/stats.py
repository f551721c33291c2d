"""`dlq stats`: what the dead letters have in common, to find the pattern behind a spike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ops.oncall.dead_letters import DeadLetter


@dataclass(frozen=True)
class DeadLetterStats:
    total: int
    by_reason: list[tuple[str, int]]  # most frequent first
    by_hour: list[tuple[datetime, int]]  # chronological, UTC hours
    top_stores: list[tuple[str, int]]
    top_errors: list[tuple[str, int]]
    replayed: int  # records that were themselves replays (replay.count > 0)

    def to_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "by_reason": dict(self.by_reason),
            "by_hour": {hour.isoformat(): count for hour, count in self.by_hour},
            "top_stores": dict(self.top_stores),
            "top_errors": dict(self.top_errors),
            "replayed": self.replayed,
        }


def dead_letter_stats(records: Sequence[DeadLetter], *, top: int = 10) -> DeadLetterStats:
    reasons = Counter(record.reason.value if record.reason else "unknown" for record in records)
    hours = Counter(
        record.failed_at.replace(minute=0, second=0, microsecond=0) for record in records
    )
    stores = Counter(record.store_id for record in records)
    errors = Counter(record.error for record in records)
    return DeadLetterStats(
        total=len(records),
        by_reason=reasons.most_common(),
        by_hour=sorted(hours.items()),
        top_stores=stores.most_common(top),
        top_errors=errors.most_common(top),
        replayed=sum(1 for record in records if record.replay_count > 0),
    )
