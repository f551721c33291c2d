"""`store-publish consume` with one Kafka commit interrupted, for the pipelining fault tests.

    python -m tests.helpers.interrupted_consumer MODE AT

At the AT-th Kafka transaction, once the poll after it has been decided in PostgreSQL (its
ledger rows are there while this commit has not returned), one of:

- `fail`: the commit raises a connection error (the broker went away mid-commit);
- `fence`: the process's transactional id is initialised elsewhere first, so the commit is
  refused as fenced;
- `kill`: the process SIGKILLs itself, the next poll decided and neither committed;
- `term`: the process SIGTERMs itself, with both polls in flight, and the commit goes on.

Before it acts it prints one JSON line, `{"injected": MODE, "decided_before": n,
"decided_after": m}`: n requests were decided through this poll, m in the database while it
commits; m > n shows the next poll was decided meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition

from consumers import kafka_io
from consumers.outcomes import OutboundRecord
from ops.cli import main as cli_main
from schemas.settings import Settings
from tests.helpers.workload import decided

MODES = ("fail", "fence", "kill", "term")


async def _until_next_poll_decided(dsn: str, before: int, wait_s: float = 15.0) -> int:
    deadline = time.monotonic() + wait_s
    now = before
    while now <= before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        now = await decided(dsn)
    return now


def install(mode: str, at: int) -> None:
    settings = Settings()
    original = kafka_io.TransactionalWriter.commit
    calls = 0
    # Each partition's next offset after the polls committed so far and this one: the
    # topic's offsets start at 0 and this is the only consumer, so their sum is the number
    # of requests decided through this poll.
    through: dict[TopicPartition, int] = {}

    async def commit(
        self: Any, records: Sequence[OutboundRecord], offsets: Mapping[TopicPartition, int]
    ) -> None:
        nonlocal calls
        calls += 1
        through.update(offsets)
        if calls != at:
            return await original(self, records, offsets)
        before = sum(through.values())
        after = await _until_next_poll_decided(settings.dsn(), before)
        line = {"injected": mode, "decided_before": before, "decided_after": after}
        print(json.dumps(line), flush=True)
        if mode == "fail":
            raise KafkaConnectionError("injected: the broker went away mid-commit")
        if mode == "fence":
            await kafka_io.fence(settings, self.transactional_id)
        elif mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif mode == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        return await original(self, records, offsets)

    kafka_io.TransactionalWriter.commit = commit  # type: ignore[method-assign]


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in MODES or not sys.argv[2].isdigit():
        sys.exit(f"usage: python -m tests.helpers.interrupted_consumer {'|'.join(MODES)} AT")
    install(sys.argv[1], int(sys.argv[2]))
    sys.argv = ["store-publish", "consume"]
    cli_main()
