"""The pipeline's PostgreSQL roles as SQL: `render()` writes `ops/db/roles.sql` from the
grants of `ops.runtime.pg_roles`, and `store-publish migrate` applies that file after the
migrations, on every run (`ops.db.migrate`).

A file rather than a numbered migration: it is applied again each time, so the roles always
converge on what the code says (a grant no longer wanted is revoked), and a DBA reads the
whole truth in one place. `python -m ops.db.roles > ops/db/roles.sql` regenerates it; a unit
test keeps the two equal.

Roles belong to the cluster and grants to a database: a role is created only when missing,
in a block that takes "made meanwhile by a migrate of another database" for success, so
migrating several databases of one cluster at once never fails on them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from ops.runtime.pg_roles import DATABASE_ROLES, LEDGER_TABLE, SCHEMA, PgGrant, pg_grants
from ops.runtime.roles import LEDGER_OWNER, ROLE_DUTIES, Role, pg_role

_WIDTH = 96

_HEADER = """\
-- The pipeline's PostgreSQL roles and what each may do in the database.
--
-- Rendered from ops/runtime/pg_roles.py by `python -m ops.db.roles`; never edit by hand.
-- `store-publish migrate` applies it after the migrations, on every run, in their
-- transaction: each role ends with exactly the grants below (what else it was granted on
-- this schema's tables and sequences is revoked). Nothing is granted to PUBLIC.
--
-- The process roles may log in but have no password: a DBA sets one (ALTER ROLE ...
-- PASSWORD), or makes them NOLOGIN and grants them to login users of their own; migrate
-- never changes either once the role exists. The ledger's owner never logs in: the
-- consumer, its member, takes it (SET LOCAL ROLE) for the ledger's maintenance alone, and
-- does not inherit its rights (NOINHERIT).
"""


@dataclass(frozen=True)
class NewRole:
    """A role as migrate makes it: `attributes` when it is created; `insisted` (NOLOGIN or
    NOINHERIT), where the code insists, is brought back on a role that has drifted from it."""

    name: str
    attributes: str
    insisted: Literal["NOLOGIN", "NOINHERIT"] | None = None


def create_roles_sql(roles: Sequence[NewRole]) -> str:
    """One block that creates each of `roles` when missing, and in which a migrate of another
    database creating one at the same moment is no error (each role in a block of its own)."""
    rows = ",\n".join(
        f"        ('{role.name}', '{role.attributes}', "
        + (f"'{role.insisted}'" if role.insisted else "NULL")
        + ")"
        for role in roles
    )
    return "\n".join(
        [
            "DO $$",
            "DECLARE",
            "    wanted record;",
            "BEGIN",
            "    FOR wanted IN SELECT * FROM (VALUES",
            rows,
            "    ) AS r(name, attributes, insisted) LOOP",
            "        BEGIN",
            "            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted.name) THEN",
            "                EXECUTE format('CREATE ROLE %I %s', wanted.name, wanted.attributes);",
            "            ELSIF wanted.insisted = 'NOLOGIN' AND EXISTS (SELECT FROM pg_roles",
            "                      WHERE rolname = wanted.name AND rolcanlogin)",
            "               OR wanted.insisted = 'NOINHERIT' AND EXISTS (SELECT FROM pg_roles",
            "                      WHERE rolname = wanted.name AND rolinherit) THEN",
            "                EXECUTE format('ALTER ROLE %I %s', wanted.name, wanted.insisted);",
            "            END IF;",
            "        EXCEPTION WHEN duplicate_object OR unique_violation THEN",
            "            NULL;  -- created meanwhile by a migrate of another database",
            "        END;",
            "    END LOOP;",
            "END",
            "$$;",
        ]
    )


def _grant_membership(group: str, member: str) -> str:
    return "\n".join(
        [
            "DO $$",
            "BEGIN",
            "    IF NOT EXISTS (SELECT FROM pg_auth_members m",
            "                     JOIN pg_roles g ON g.oid = m.roleid",
            "                     JOIN pg_roles r ON r.oid = m.member",
            f"                    WHERE g.rolname = '{group}' AND r.rolname = '{member}') THEN",
            f"        GRANT {group} TO {member};",
            "    END IF;",
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN",
            "    NULL;  -- granted meanwhile by a migrate of another database",
            "END",
            "$$;",
        ]
    )


def _grant(grant: PgGrant, to: str) -> str:
    # A column list belongs to the privilege just before it: each privilege gets its own.
    columns = " (" + ", ".join(grant.columns) + ")" if grant.columns else ""
    privileges = ", ".join(privilege + columns for privilege in grant.privileges)
    statement = f"GRANT {privileges} ON {grant.kind.upper()} {grant.name} TO {to};"
    return "\n".join(textwrap.wrap(statement, _WIDTH, subsequent_indent="    "))


def _fresh_start(names: Sequence[str]) -> str:
    """The process roles start from nothing on the schema, then get their grants below."""
    to = ", ".join(names)
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {to};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {SCHEMA} FROM {to};",
        f"REVOKE ALL ON SCHEMA {SCHEMA} FROM {to};",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {to};",
    ]
    return "\n".join(
        line
        for statement in statements
        for line in textwrap.wrap(statement, _WIDTH, subsequent_indent="    ")
    )


def _role_grants(role: Role) -> str:
    name = pg_role(role)
    lines = [
        f"-- {name}: {ROLE_DUTIES[role]}.",
        *(_grant(grant, name) for grant in pg_grants(role)),
    ]
    return "\n".join(lines)


def _ledger_ownership() -> str:
    return "\n".join(
        [
            "DO $$",
            "DECLARE",
            "    ledger regclass;",
            "BEGIN",
            f"    FOR ledger IN SELECT '{LEDGER_TABLE}'::regclass",
            "                  UNION ALL",
            "                  SELECT inhrelid::regclass FROM pg_inherits",
            f"                   WHERE inhparent = '{LEDGER_TABLE}'::regclass LOOP",
            f"        EXECUTE format('ALTER TABLE %s OWNER TO {LEDGER_OWNER}', ledger);",
            "    END LOOP;",
            "END",
            "$$;",
        ]
    )


def render() -> str:
    """The text of `ops/db/roles.sql`."""
    consumer = pg_role(Role.CONSUMER)
    sections = [
        _HEADER,
        "-- Roles (the cluster's).",
        create_roles_sql(
            [
                NewRole(LEDGER_OWNER, "NOLOGIN", insisted="NOLOGIN"),
                *(
                    NewRole(consumer, "LOGIN NOINHERIT", insisted="NOINHERIT")
                    if role is Role.CONSUMER
                    else NewRole(pg_role(role), "LOGIN")
                    for role in DATABASE_ROLES
                ),
            ]
        ),
        _grant_membership(LEDGER_OWNER, consumer),
        "-- Grants (this database's).\n"
        "-- Nobody but the owners creates objects in the schema (PostgreSQL 15's default).\n"
        f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC;",
        f"-- {LEDGER_OWNER}: owns the idempotency ledger and its partitions, makes and drops\n"
        "-- them; may create tables in the schema for that, and nothing else.\n"
        f"GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO {LEDGER_OWNER};\n" + _ledger_ownership(),
        "-- The process roles: each starts from nothing on the schema, then gets its grants.\n"
        + _fresh_start([pg_role(role) for role in DATABASE_ROLES]),
        *(_role_grants(role) for role in DATABASE_ROLES),
    ]
    return "\n\n".join(section.rstrip("\n") for section in sections) + "\n"


def roles_sql() -> str:
    """The committed `ops/db/roles.sql`, as migrate applies it."""
    return (resources.files("ops.db") / "roles.sql").read_text(encoding="utf-8")


if __name__ == "__main__":
    print(render(), end="")
