"""The demo's accounts: what was sent, what came out, and the checks that must balance."""

from __future__ import annotations

import statistics
from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.demo.plan import Plan
from schemas.events import Alert, PublishOutcome, Status
from schemas.settings import Settings


def print_checks(console: Console, checks: dict[str, bool]) -> bool:
    for text, ok in checks.items():
        console.print(("[green]ok[/green] " if ok else "[red]MISMATCH[/red] ") + text)
    return all(checks.values())


def inspect_command(settings: Settings) -> str:
    return (
        f"TOPIC_DLQ={settings.topic_dlq} TOPIC_REQUESTS={settings.topic_requests} "
        f"CONSUMER_GROUP={settings.consumer_group} store-publish dlq list"
    )


def print_pasteable(console: Console, label: str, command: str) -> None:
    """A command on one line whatever the terminal's width, so it pastes as one."""
    console.print(Text(label))
    console.print(Text(command), soft_wrap=True)


def print_account(
    console: Console,
    settings: Settings,
    plan: Plan,
    outcomes: list[PublishOutcome],
    dead: Counter[str],
    alerts: list[Alert],
    elapsed: float,
) -> bool:
    sent = len(plan.values)
    table = Table(title="Outcomes by status and reason")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("count", justify="right")
    by = Counter((o.status.value, o.reason.value if o.reason else "") for o in outcomes)
    for (status, reason), count in sorted(by.items()):
        table.add_row(status, reason or "-", str(count))
    table.add_row("[b]all[/b]", "", f"[b]{len(outcomes)}[/b]")
    console.print(table)

    sent_table = Table(title="Requests sent, by kind")
    sent_table.add_column("kind")
    sent_table.add_column("count", justify="right")
    for kind, count in plan.kinds.most_common():
        sent_table.add_row(kind, str(count))
    sent_table.add_row("[b]all[/b]", f"[b]{sent}[/b]")
    console.print(sent_table)

    dl_table = Table(title="Dead letters by reason")
    dl_table.add_column("reason")
    dl_table.add_column("count", justify="right")
    for reason, count in dead.most_common():
        dl_table.add_row(reason, str(count))
    dl_table.add_row("[b]all[/b]", f"[b]{sum(dead.values())}[/b]")
    console.print(dl_table)

    total = len(outcomes) or 1
    latencies = sorted(o.latency_ms for o in outcomes)
    p95 = statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else 0.0
    console.print(
        f"rates: error {sum(o.status is Status.FAILED for o in outcomes) / total:.2%}, "
        f"retry {sum(o.attempts > 1 for o in outcomes) / total:.2%}, "
        f"gating block {sum(o.status is Status.GATED for o in outcomes) / total:.2%}, "
        f"p95 latency {p95:.0f} ms"
    )
    for alert in alerts:
        console.print(
            f"alert {alert.alert} {alert.state.value} value={alert.value:.3f} "
            f"threshold={alert.threshold} action={alert.action.value}"
        )
    if not alerts:
        console.print("alerts: none raised")
    refused = sum(1 for o in outcomes if o.status in (Status.REJECTED, Status.FAILED))
    ids = [o.request_event_id for o in outcomes if o.request_event_id is not None]
    distinct_requests = len({v for v, _ in plan.values})
    checks = {
        f"outcomes ({len(outcomes)}) = requests sent ({sent})": len(outcomes) == sent,
        f"dead letters ({sum(dead.values())}) = rejected + failed ({refused})": sum(dead.values())
        == refused,
        "each store published by one request": len(
            {o.store_id for o in outcomes if o.status is Status.PUBLISHED}
        )
        == len({o.request_event_id for o in outcomes if o.status is Status.PUBLISHED}),
        f"distinct requests ({distinct_requests}) <= outcomes": len(set(ids)) <= distinct_requests,
    }
    balanced = print_checks(console, checks)
    console.print(
        f"{len(outcomes)} requests in {elapsed:.1f} s: {len(outcomes) / elapsed:,.0f} per second "
        "(sending included)"
    )
    return balanced
