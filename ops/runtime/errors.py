"""The long-running processes' own errors: what they raise for a command to explain.

`ops.runtime` sits below every command, so it says what went wrong in its own terms and
`ops.errors` decides the line and the exit code.
"""

from __future__ import annotations


class PartitionCountMismatch(Exception):
    """A topic has another partition count than `TOPIC_PARTITIONS`: migrate never changes one,
    since that moves stores to other partitions."""

    def __init__(self, topic: str, count: int, wanted: int) -> None:
        super().__init__(
            f"topic {topic!r} has {count} partitions but TOPIC_PARTITIONS is {wanted}: set "
            f"TOPIC_PARTITIONS={count} (migrate never changes a partition count: it moves "
            "stores to other partitions)"
        )
        self.topic = topic
        self.count = count
        self.wanted = wanted


class NotAuthorized(Exception):
    """The broker refused this process's principal something its role needs: a missing ACL,
    named, never waited for (it does not grant itself)."""

    def __init__(self, principal: str, needed: str) -> None:
        super().__init__(
            f"Kafka refused {principal}: it needs {needed} "
            "(grant the role's ACLs: `store-publish acl apply`, docs/security.md)"
        )
        self.principal = principal
        self.needed = needed


class UnknownExporter(ValueError):
    """OTEL_TRACES_EXPORTER names an exporter this project does not ship (ops.runtime.tracing)."""
