"""Each process's CPU in a phase at a steady rate: by role, per request, the pipeline's four
processes together in cores, the Kafka transactions per second, and the shared services'
CPU less what they used idle just before (`phases.shared_idle_cores`)."""

from __future__ import annotations

from ops.bench.poll_steps import PollSteps

# The broker's JIT compiler threads, kept out of "broker" (`ops.bench.cpu.jit_seconds`).
BROKER_JIT = "broker JIT"
# The processes a phase's CPU is reported for: a child's name without its phase, or with a
# worker's number after it ("consumer-2"), and the bench's own process, which in the
# steady-rate phases is the load generator (with the outcome reader and the lag sampler);
# and the broker's JIT apart.
PROCESS_ROLES = {
    "consumer": "consumer",
    "stream": "stream",
    "broker": "broker",
    BROKER_JIT: BROKER_JIT,
    "postgres": "postgres",
    "bench": "load generator",
}
PIPELINE_PROCESSES = ("consumer", "stream", "broker", "postgres")
LOAD_GENERATOR = "load generator"
PIPELINE = "the four"


def _num(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


class SteadyRateCpu:
    """What `PhaseFigures` knows of its CPU, read per process; mixed into it."""

    name: str
    requests: int
    cpu_seconds: dict[str, float | None]
    poll_steps: PollSteps | None
    cpu_span_s: float | None
    offered_rate: float | None
    shared_idle_cores: dict[str, float | None]

    def process_cpu(self) -> dict[str, float | None]:
        """CPU seconds by process role; several workers of a role added together (the
        phase keeps their sum under the role's name, or each under "role-N")."""
        roles: dict[str, float | None] = {}
        for name, role in PROCESS_ROLES.items():
            if name in self.cpu_seconds:
                roles[role] = self.cpu_seconds[name]
                continue
            workers = [v for k, v in self.cpu_seconds.items() if k.startswith(name + "-")]
            if workers:
                known = [v for v in workers if v is not None]
                roles[role] = round(sum(known), 2) if len(known) == len(workers) else None
        return roles

    def cpu_us_per_request(self) -> dict[str, float | None]:
        """Each process role's CPU per request of the phase, in µs, and the pipeline's four
        together (consumer, stream, broker, PostgreSQL)."""
        per: dict[str, float | None] = {}
        if not self.requests:
            return per
        roles = self.process_cpu()
        apart = (BROKER_JIT,) if BROKER_JIT in roles else ()
        for role in (*PIPELINE_PROCESSES, LOAD_GENERATOR, *apart):
            used = roles.get(role)
            per[role] = round(used / self.requests * 1e6, 1) if used is not None else None
        four = [roles.get(role) for role in PIPELINE_PROCESSES]
        per[PIPELINE] = (
            round(sum(v for v in four if v is not None) / self.requests * 1e6, 1)
            if all(v is not None for v in four)
            else None
        )
        return per

    def net_of_idle_us_per_request(self) -> dict[str, float | None]:
        """The shared services' CPU per request less what they used idle over as long."""
        roles = self.process_cpu()
        net: dict[str, float | None] = {}
        for role, idle in self.shared_idle_cores.items():
            used = roles.get(role)
            if used is None or idle is None or not self.cpu_span_s or not self.requests:
                net[role] = None
            else:
                net[role] = round((used - idle * self.cpu_span_s) / self.requests * 1e6, 1)
        return net

    @property
    def pipeline_cores(self) -> float | None:
        """The four pipeline processes' CPU over the phase's span, in cores."""
        roles = self.process_cpu()
        four = [roles.get(role) for role in PIPELINE_PROCESSES]
        if not self.cpu_span_s or any(v is None for v in four):
            return None
        return round(sum(v for v in four if v is not None) / self.cpu_span_s, 3)

    @property
    def kafka_transactions(self) -> int | None:
        """The consumers' Kafka transactions: one per poll committed (its commit step)."""
        return self.poll_steps.counts.get("commit") if self.poll_steps is not None else None

    @property
    def kafka_transactions_per_s(self) -> float | None:
        count = self.kafka_transactions
        if count is None or not self.cpu_span_s:
            return None
        return round(count / self.cpu_span_s, 1)

    def cpu_table(self) -> list[str]:
        """Per process: CPU seconds and µs per request; the four together; transactions/s."""
        roles, per = self.process_cpu(), self.cpu_us_per_request()
        rate = f"{self.offered_rate:,.0f}/s" if self.offered_rate else self.name
        lines = [f"  CPU at {rate} ({self.requests:,} requests, {self.cpu_span_s or 0:.1f} s):"]
        for role in (*PIPELINE_PROCESSES, LOAD_GENERATOR):
            used, us = roles.get(role), per.get(role)
            lines.append(f"    {role:<16} {_num(used, '.2f'):>8} s {_num(us, '.1f'):>8} µs/request")
            if role == "broker" and BROKER_JIT in roles:
                jit, jit_us = roles[BROKER_JIT], per.get(BROKER_JIT)
                lines.append(
                    f"    {'  JIT compiler':<16} {_num(jit, '.2f'):>8} s {_num(jit_us, '.1f'):>8} "
                    "µs/request, apart from the four"
                )
        four = [roles.get(role) for role in PIPELINE_PROCESSES]
        total = sum(v for v in four if v is not None) if all(v is not None for v in four) else None
        lines.append(
            f"    {PIPELINE:<16} {_num(total, '.2f'):>8} s {_num(per.get(PIPELINE), '.1f'):>8} "
            f"µs/request, {_num(self.pipeline_cores, '.3f')} cores; Kafka transactions "
            f"{_num(self.kafka_transactions_per_s, '.1f')}/s"
        )
        if self.shared_idle_cores:
            net = self.net_of_idle_us_per_request()
            lines.append(
                "    shared services idle just before, cores: "
                + ", ".join(f"{k} {_num(v, '.3f')}" for k, v in self.shared_idle_cores.items())
                + "; per request less that: "
                + ", ".join(f"{k} {_num(v, '.1f')} µs" for k, v in net.items())
            )
        return lines
