"""`store-publish acl print | apply`: the roles' Kafka ACLs (ops/runtime/roles.py).

`print` shows them as a table that fits the terminal, or as `kafka-acls.sh` commands for a
managed cluster (`--commands`); `apply` creates what the broker lacks, as a principal allowed
to alter ACLs. Principals default to the local secure setup's SCRAM users
(`User:store-publish-<role>`); `--principal ROLE=User:NAME` maps a role to another.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ops.access.kafka_acls import (
    Acl,
    AclError,
    acl_commands,
    apply_acls,
    parse_principals,
    role_acls,
)
from ops.cli.edge import operator_errors
from ops.errors import ExitCode, OperatorError
from ops.oncall.fit import Column, fit_table, show
from schemas.settings import Settings

acl_app = typer.Typer(
    help="The roles' Kafka ACLs: print them, or apply them to the broker.",
    no_args_is_help=True,
    add_completion=False,
)

PrincipalOption = Annotated[
    list[str] | None,
    typer.Option(
        "--principal",
        metavar="ROLE=User:NAME",
        help="Map a role to a principal other than User:store-publish-<role> (repeatable).",
    ),
]

# A prefixed name ends in `*`; the principal goes first when the terminal is narrow (it is
# `User:store-publish-<role>` unless mapped).
_COLUMNS = (
    Column("ROLE"),
    Column("OPERATION"),
    Column("RESOURCE"),
    Column("NAME", kind="text", shortest=16),
    Column("PRINCIPAL", keep=1, kind="text", shortest=10),
)


def _acls(principals: list[str] | None) -> tuple[Settings, list[Acl]]:
    try:
        mapped = parse_principals(principals or [])
    except ValueError as error:
        raise OperatorError(str(error), ExitCode.BAD_ARGUMENTS) from None
    settings = Settings()
    return settings, role_acls(settings, mapped)


def acl_rows(acls: list[Acl]) -> list[list[str]]:
    return [
        [
            acl.role.value,
            acl.operation,
            acl.resource.replace("_", " "),
            acl.shown_name,
            acl.principal,
        ]
        for acl in acls
    ]


@acl_app.command("print")
def print_acls(
    principal: PrincipalOption = None,
    commands: Annotated[
        bool, typer.Option("--commands", help="As kafka-acls.sh commands, one a line.")
    ] = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column whole.")] = False,
) -> None:
    """Print every role's ACLs (nothing is asked of the broker)."""
    with operator_errors():
        settings, acls = _acls(principal)
        if commands:
            for line in acl_commands(acls, settings.kafka_bootstrap_servers):
                typer.echo(line)
            return
        console = Console()
        show(
            console, fit_table(_COLUMNS, acl_rows(acls), width=console.width, wide=wide), wide=wide
        )


@acl_app.command("apply")
def apply(
    principal: PrincipalOption = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Also delete these principals' ACLs that no role grants."),
    ] = False,
) -> None:
    """Create the ACLs the broker lacks (as a principal allowed to alter ACLs)."""
    with operator_errors():
        settings, acls = _acls(principal)
        try:
            applied = apply_acls(settings, acls, prune=prune)
        except AclError as error:
            raise OperatorError(str(error), ExitCode.UNREACHABLE) from None
        for acl in applied.created:
            typer.echo(f"created: {acl.principal} {acl.describe()}")
        for line in applied.pruned:
            typer.echo(f"deleted: {line}")
        typer.echo(
            f"acl: {len(applied.created)} created, {len(applied.present)} already present"
            + (f", {len(applied.pruned)} deleted" if prune else "")
        )
