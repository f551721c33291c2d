"""When the consumer holds its partitions back, and when it lets them go: the pause switch, a
database that does not answer, and a database that answers with a fault.

Holding back is `pause` on the Kafka consumer plus the batch sought back: requests wait in
Kafka, nothing is decided, failed or dead-lettered while held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka.structs import TopicPartition

from consumers.errors import DatabaseFault
from consumers.metrics import ConsumerMetrics
from consumers.state_report import StateReport
from ops.runtime.faults import describe, is_unreachable
from ops.runtime.pause_switch import ControlState
from ops.runtime.waiting import sleep_or_stop
from schemas.settings import Settings

log = structlog.get_logger("consumers.holding")

# How soon a batch held back for a database fault is tried again, at first; it doubles up
# to DB_OUTAGE_MAX_BACKOFF_MS while the fault lasts.
FIRST_FAULT_DELAY_S = 0.2


class Pausable(Protocol):
    """The part of the Kafka consumer that holds partitions back."""

    def assignment(self) -> Set[TopicPartition]: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...


ReadSwitch = Callable[[], Awaitable[ControlState]]
# Raises while the database does not answer.
ProbeDatabase = Callable[[], Awaitable[None]]
# Told each new state, for `store-publish status` (a `StateReporter`).
Report = Callable[[StateReport], None]
# Drops the pool's connections: a session can carry the fault (a connection that landed on
# a read-only standby, settings of a role changed since), so the retry gets fresh ones.
Reconnect = Callable[[], Awaitable[None]]


@dataclass
class HeldFault:
    """A database fault the consumer is waiting out."""

    sqlstate: str | None
    error: str
    since: datetime


class Holding:
    """The pause switch as last read, and the database's state as last seen."""

    def __init__(
        self,
        settings: Settings,
        consumer: Pausable,
        read_switch: ReadSwitch,
        probe: ProbeDatabase,
        reconnect: Reconnect,
        metrics: ConsumerMetrics,
        report: Report | None = None,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._read_switch = read_switch
        self._probe = probe
        self._reconnect = reconnect
        self._report = report
        self._since = datetime.now(UTC)
        self._metrics = metrics
        self.paused = False
        self.pause_reason: str | None = None
        self.database_down_since: datetime | None = None
        self.fault: HeldFault | None = None
        self._fault_delay = FIRST_FAULT_DELAY_S
        self._next_switch_read = 0.0
        metrics.database_available.set(1)
        metrics.paused.set(0)
        self._changed()

    @property
    def holds_back(self) -> bool:
        """Whether newly assigned partitions must start paused."""
        return self.paused or self.database_down_since is not None or self.fault is not None

    def report(self) -> tuple[bool, dict[str, object]]:
        """/health: ok while the database answers without fault; why not, otherwise."""
        down, fault = self.database_down_since, self.fault
        details: dict[str, object] = {
            "database": "unavailable" if down else ("fault" if fault else "available"),
            "paused": self.paused,
            "pause_reason": self.pause_reason,
        }
        if down is not None:
            details["database_down_since"] = down.isoformat()
            details["waiting"] = "for PostgreSQL; partitions paused, requests wait in Kafka"
        if fault is not None:
            details["database_fault"] = {
                "sqlstate": fault.sqlstate,
                "error": fault.error,
                "since": fault.since.isoformat(),
            }
            details["waiting"] = (
                "for the database fault to clear; partitions paused, requests wait in Kafka"
            )
        return down is None and fault is None, details

    def state(self) -> StateReport:
        """The most serious reason for holding back, or working."""
        if self.database_down_since is not None:
            return StateReport("database_unavailable", None, None, self.database_down_since)
        if self.fault is not None:
            return StateReport(
                "database_fault", self.fault.sqlstate, self.fault.error, self.fault.since
            )
        if self.paused:
            return StateReport("paused", None, self.pause_reason, self._since)
        return StateReport("working", None, None, self._since)

    def _changed(self) -> None:
        # The moment the new state began: what `state()` reports as `since` for working
        # and paused (the database's states carry their own).
        self._since = datetime.now(UTC)
        if self._report is not None:
            self._report(self.state())

    # The pause switch -------------------------------------------------------------------

    async def read_switch_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_switch_read:
            return
        self._next_switch_read = now + self._settings.pause_poll_interval_ms / 1000
        state = await self._read_switch()
        if state.paused != self.paused:
            self.set_paused(state.paused, state.reason)

    def set_paused(self, paused: bool, reason: str | None) -> None:
        self.paused = paused
        self.pause_reason = reason if paused else None
        self._metrics.paused.set(1 if paused else 0)
        assignment = list(self._consumer.assignment())
        if paused:
            self._consumer.pause(*assignment)
            log.warning("Publishing paused", reason=reason)
        else:
            self._consumer.resume(*assignment)
            log.info("Publishing resumed")
        self._changed()
        # Read the switch again soon: a batch refused by the switch re-reads its reason.
        self._next_switch_read = 0.0

    # The database ----------------------------------------------------------------------

    async def wait_for_database(self, stop: asyncio.Event, error: BaseException) -> None:
        """Hold every partition back until the database answers again (or `stop`)."""
        self.database_down_since = datetime.now(UTC)
        self._metrics.database_available.set(0)
        self._consumer.pause(*self._consumer.assignment())
        log.error("Database unavailable, requests wait in Kafka", error=describe(error))
        self._changed()
        delay = 0.1
        max_delay = self._settings.db_outage_max_backoff_ms / 1000
        while not stop.is_set():
            try:
                await self._probe()
                break
            except Exception as probe_error:
                if not is_unreachable(probe_error):
                    # It answers, with a fault: the next batch finds out which.
                    break
            await sleep_or_stop(stop, delay)
            delay = min(delay * 2, max_delay)
        log.info(
            "Database available again",
            downSeconds=(datetime.now(UTC) - self.database_down_since).total_seconds(),
        )
        self.database_down_since = None
        if self.fault is None:
            self._metrics.database_available.set(1)
        self._changed()
        self._next_switch_read = 0.0
        self._let_go()

    async def wait_out_fault(self, stop: asyncio.Event, fault: DatabaseFault) -> None:
        """Hold every partition back for a while, then let the batch try again: the batch
        is the probe, since only its own statements show whether the fault is gone."""
        if self.fault is None:
            self.fault = HeldFault(fault.sqlstate, fault.error, datetime.now(UTC))
            self._metrics.database_available.set(0)
            log.error(
                "Database fault, publishing held back and requests wait in Kafka",
                sqlstate=fault.sqlstate,
                error=fault.error,
            )
            self._changed()
        self._metrics.database_faults.labels(fault.sqlstate or "none").inc()
        self._consumer.pause(*self._consumer.assignment())
        await sleep_or_stop(stop, self._fault_delay)
        try:
            await self._reconnect()
        except Exception as error:
            log.warning("Could not drop the pool's connections", error=describe(error))
        self._fault_delay = min(
            self._fault_delay * 2, self._settings.db_outage_max_backoff_ms / 1000
        )
        self._next_switch_read = 0.0
        self._let_go()

    def went_through(self) -> None:
        """A batch was decided and committed: whatever fault there was is gone."""
        fault, self.fault = self.fault, None
        self._fault_delay = FIRST_FAULT_DELAY_S
        if fault is not None:
            self._metrics.database_available.set(1)
            log.info(
                "Database fault cleared, publishing carries on",
                sqlstate=fault.sqlstate,
                faultSeconds=(datetime.now(UTC) - fault.since).total_seconds(),
            )
            self._changed()

    def _let_go(self) -> None:
        if not self.paused:
            self._consumer.resume(*self._consumer.assignment())
