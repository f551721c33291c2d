"""The PostgreSQL half of the roles: what each process's role may do in the database, the
DSN a role connects with, and which of those privileges a database does not give.

The grants are data here, next to the processes whose statements need them (the comments
say which); `ops/db/roles.py` renders them as the SQL `store-publish migrate` applies
(`ops/db/roles.sql`, the text a DBA reads), and `store-publish status` asks PostgreSQL which
of them are missing. A column list grants on those columns only: the gateway reads a store's
owner but not its slug, the consumer publishes a store but cannot give it to someone else.

The upstream services, analytics and the migration need no role of these: the first two do
not touch the database, and `migrate` runs as the schema's owner (who creates the roles).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from ops.runtime.roles import LEDGER_OWNER, Role, pg_role

ObjectKind = Literal["table", "sequence"]
# PostgreSQL's privilege names, as GRANT spells them.
Privilege = Literal["SELECT", "INSERT", "UPDATE", "DELETE", "USAGE"]

SCHEMA = "public"
# The idempotency ledger: its partitions are made and dropped by the ledger's owner alone.
LEDGER_TABLE = "publish_requests"


@dataclass(frozen=True)
class PgGrant:
    """`privileges` on one table or sequence; on `columns` only, when they are given."""

    name: str
    privileges: tuple[Privilege, ...]
    columns: tuple[str, ...] = ()
    kind: ObjectKind = "table"


_SWITCH_COLUMNS = ("paused", "reason", "changed_by", "changed_at")

_GRANTS: dict[Role, tuple[PgGrant, ...]] = {
    Role.CONSUMER: (
        # consumers/repository.py: the batch's facts, read in bulk.
        PgGrant("users", ("SELECT",), ("id",)),
        PgGrant(
            "onboarding_step_definitions",
            ("SELECT",),
            ("id", "version", "active_from", "active_to"),
        ),
        PgGrant("user_onboarding", ("SELECT",), ("user_id", "step_id", "version", "status")),
        PgGrant(
            "stores", ("SELECT",), ("id", "owner_id", "slug", "status", "store_url", "published_at")
        ),
        # Publishing a draft; owner and slug stay the platform's.
        PgGrant(
            "stores",
            ("UPDATE",),
            ("status", "store_url", "published_at", "published_by_event_id", "updated_at"),
        ),
        # The analytics rows; ON CONFLICT names its arbiter's columns, which SELECT covers.
        PgGrant(
            "onboarding_events",
            ("INSERT",),
            (
                "user_id",
                "event_type",
                "step_id",
                "version",
                "metadata",
                "correlation_id",
                "request_event_id",
            ),
        ),
        PgGrant("onboarding_events", ("SELECT",), ("request_event_id", "event_type", "step_id")),
        # The idempotency record, through the partitioned table.
        PgGrant(LEDGER_TABLE, ("SELECT", "INSERT")),
        # The switch is read FOR SHARE in each batch, which PostgreSQL allows only to a role
        # that may update a column: `id`, which its CHECK keeps true, so the consumer can
        # lock the switch but never flip it.
        PgGrant("publish_control", ("SELECT",)),
        PgGrant("publish_control", ("UPDATE",), ("id",)),
        PgGrant("partition_owners", ("SELECT", "INSERT", "UPDATE")),
        PgGrant("consumer_states", ("SELECT", "INSERT", "UPDATE", "DELETE")),
    ),
    Role.STREAM: (
        # ops/runtime/pause_switch.py set_paused, on the automatic rollback: the switch and
        # its history, nothing else.
        PgGrant("publish_control", ("SELECT",), ("id", *_SWITCH_COLUMNS)),
        PgGrant("publish_control", ("UPDATE",), _SWITCH_COLUMNS),
        PgGrant("publish_control_history", ("SELECT", "INSERT"), _SWITCH_COLUMNS),
        PgGrant("publish_control_history_id_seq", ("USAGE",), kind="sequence"),
    ),
    Role.GATEWAY: (
        # ops/gateway/lookup.py: the caller's store, the switch, a decided request's outcome.
        PgGrant("users", ("SELECT",), ("id",)),
        PgGrant("stores", ("SELECT",), ("id", "owner_id", "created_at")),
        PgGrant("publish_control", ("SELECT",), ("id", "paused")),
        PgGrant(
            LEDGER_TABLE, ("SELECT",), ("event_id", "user_id", "outcome", "first_processed_at")
        ),
    ),
    Role.ONCALL: (
        # pause, resume (ops/cli/switch.py) and the replay history (ops/oncall/replay.py).
        PgGrant("publish_control", ("SELECT",)),
        PgGrant("publish_control", ("UPDATE",), _SWITCH_COLUMNS),
        PgGrant("publish_control_history", ("SELECT", "INSERT")),
        PgGrant("publish_control_history_id_seq", ("USAGE",), kind="sequence"),
        PgGrant("dlq_replays", ("SELECT", "INSERT")),
        PgGrant("dlq_replays_id_seq", ("USAGE",), kind="sequence"),
        # `status` (ops/oncall/status.py): the consumers' states and the recent outcomes'
        # counts, not the outcomes themselves.
        PgGrant("consumer_states", ("SELECT",)),
        PgGrant(LEDGER_TABLE, ("SELECT",), ("status", "reason", "attempts", "processed_at")),
    ),
}

# The roles with grants in the database, in the order they are made.
DATABASE_ROLES: tuple[Role, ...] = tuple(_GRANTS)


def pg_grants(role: Role) -> tuple[PgGrant, ...]:
    """What `role`'s processes may do in the database (besides USAGE on the schema)."""
    return _GRANTS.get(role, ())


def role_dsn(admin_dsn: str, role: Role | str, password: str | None = None) -> str:
    """`admin_dsn` with its user (and password) replaced by `role`'s: the local setup's way of
    running a process under its role (the roles log in; trusted on loopback)."""
    name = pg_role(role) if isinstance(role, Role) else role
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rpartition("@")[2]
    user = quote(name, safe="")
    if password is not None:
        user += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@dataclass(frozen=True)
class MissingPrivilege:
    """A privilege a role should have and does not (or the role itself is missing)."""

    role: str
    privilege: str
    on: str
    columns: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.privilege == "EXISTS":
            return f"database: role {self.role} does not exist (run `store-publish migrate`)"
        if self.privilege == "MEMBERSHIP":
            return f"database: role {self.role} is not a member of {self.on}"
        if self.privilege == "OWNERSHIP":
            return f"database: role {self.role} does not own {self.on}"
        what = self.privilege + (f" ({', '.join(self.columns)})" if self.columns else "")
        return f"database: role {self.role} lacks {what} on {self.on}"


@dataclass(frozen=True)
class _Check:
    role: str
    kind: str  # table, column, sequence, schema, member, owner
    on: str
    column: str
    privilege: str


def _checks(roles: Iterable[Role]) -> list[_Check]:
    checks: list[_Check] = []
    for role in roles:
        name = pg_role(role)
        checks.append(_Check(name, "schema", SCHEMA, "", "USAGE"))
        for grant in pg_grants(role):
            for privilege in grant.privileges:
                if grant.kind == "sequence":
                    checks.append(_Check(name, "sequence", grant.name, "", privilege))
                elif grant.columns:
                    checks.extend(
                        _Check(name, "column", grant.name, column, privilege)
                        for column in grant.columns
                    )
                else:
                    checks.append(_Check(name, "table", grant.name, "", privilege))
        if role is Role.CONSUMER:
            checks.append(_Check(name, "member", LEDGER_OWNER, "", "MEMBERSHIP"))
    checks.append(_Check(LEDGER_OWNER, "owner", LEDGER_TABLE, "", "OWNERSHIP"))
    checks.append(_Check(LEDGER_OWNER, "schema", SCHEMA, "", "CREATE"))
    return checks


# A table or column that is not there is no missing privilege (the schema is behind, or
# someone changed it: the reads that need it say so), so it is passed over, not asked about.
_HAS = """
SELECT c.ord
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
       WITH ORDINALITY AS c(role, kind, object, col, privilege, ord)
 WHERE NOT CASE
       WHEN c.kind IN ('table', 'column', 'sequence', 'owner')
            AND to_regclass(c.object) IS NULL THEN true
       WHEN c.kind = 'column' AND NOT EXISTS (
            SELECT FROM pg_attribute
             WHERE attrelid = to_regclass(c.object) AND attname = c.col
               AND NOT attisdropped) THEN true
       WHEN c.kind = 'table' THEN has_table_privilege(c.role, c.object, c.privilege)
       WHEN c.kind = 'column' THEN has_column_privilege(c.role, c.object, c.col, c.privilege)
       WHEN c.kind = 'sequence' THEN has_sequence_privilege(c.role, c.object, c.privilege)
       WHEN c.kind = 'schema' THEN has_schema_privilege(c.role, c.object, c.privilege)
       WHEN c.kind = 'member' THEN pg_has_role(c.role, c.object, 'MEMBER')
       ELSE (SELECT pg_get_userbyid(relowner) = c.role
               FROM pg_class WHERE oid = to_regclass(c.object))
       END
 ORDER BY c.ord"""


async def missing_privileges(
    conn: asyncpg.Connection, roles: Iterable[Role] = DATABASE_ROLES
) -> list[MissingPrivilege]:
    """What the database does not give `roles` (and the ledger's owner) of their grants: one
    entry per role, object and privilege, naming the columns missing. Any role may ask."""
    wanted = list(roles)
    names = {pg_role(role) for role in wanted} | {LEDGER_OWNER}
    present = {
        row["rolname"]
        for row in await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", sorted(names)
        )
    }
    absent = [MissingPrivilege(name, "EXISTS", "") for name in sorted(names - present)]
    checks = [
        check
        for check in _checks(wanted)
        if check.role in present and (check.kind != "member" or check.on in present)
    ]
    rows = await conn.fetch(
        _HAS,
        [c.role for c in checks],
        [c.kind for c in checks],
        [c.on for c in checks],
        [c.column for c in checks],
        [c.privilege for c in checks],
    )
    failed = [checks[row["ord"] - 1] for row in rows]
    grouped: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for check in failed:
        grouped[(check.role, check.privilege, check.on)].append(check.column)
    return absent + [
        MissingPrivilege(role, privilege, on, tuple(column for column in columns if column))
        for (role, privilege, on), columns in grouped.items()
    ]
