"""The consumers' poll steps, as their poll-step histograms say at the end of a phase."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from ops.bench.probes import metrics_text


@dataclass(frozen=True)
class PollSteps:
    """How long the consumers' polls spent in each step (the poll-step histogram), summed
    over the consumers: polls observed and seconds in all."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def mean_ms(self) -> dict[str, float]:
        return {
            step: round(self.seconds.get(step, 0.0) / count * 1000, 2)
            for step, count in self.counts.items()
            if count
        }

    def text(self) -> str:
        means = self.mean_ms()
        if not means:
            return "no polls observed"
        polls = max(self.counts.values())
        return ", ".join(f"{step} {ms:g}" for step, ms in means.items()) + f" ({polls:,} polls)"


async def poll_steps(host: str, ports: Sequence[int]) -> PollSteps:
    """The poll-step histograms of the consumers on `ports`, added together."""
    steps = PollSteps()
    for port in ports:
        text = await metrics_text(host, port)
        for family in text_string_to_metric_families(text):
            if family.name != "store_publish_consumer_poll_step_seconds":
                continue
            for sample in family.samples:
                step = sample.labels.get("step", "")
                if sample.name.endswith("_count"):
                    steps.counts[step] = steps.counts.get(step, 0) + int(sample.value)
                elif sample.name.endswith("_sum"):
                    steps.seconds[step] = steps.seconds.get(step, 0.0) + sample.value
    return steps
