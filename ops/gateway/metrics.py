"""The gateway's metrics, in the project's naming scheme, on a registry passed in."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class GatewayMetrics:
    answers: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            answers=Counter(
                "store_publish_gateway_answers_total",
                "HTTP answers by route and status code",
                ["route", "code"],
                registry=registry,
            ),
            duration=Histogram(
                "store_publish_gateway_answer_duration_seconds",
                "From a request's arrival to its answer",
                ["route"],
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                registry=registry,
            ),
        )
