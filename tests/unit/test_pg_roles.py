"""The PostgreSQL roles' grants as data, their SQL, a role's DSN and the missing-privilege
line: no database here (tests/integration/test_pg_roles.py applies them)."""

from __future__ import annotations

from pathlib import Path

from ops.db.roles import render, roles_sql
from ops.runtime.pg_roles import DATABASE_ROLES, MissingPrivilege, pg_grants, role_dsn
from ops.runtime.roles import LEDGER_OWNER, Role


def test_the_committed_sql_is_the_rendering_of_the_grants() -> None:
    assert roles_sql() == render(), "run: python -m ops.db.roles > ops/db/roles.sql"


def test_nothing_is_ever_granted_to_public() -> None:
    code = "\n".join(line for line in render().splitlines() if not line.startswith("--"))
    statements = code.upper().split(";")
    assert not [s for s in statements if "GRANT" in s and "TO PUBLIC" in s]
    assert "REVOKE CREATE ON SCHEMA PUBLIC FROM PUBLIC" in render().upper()


def test_only_the_processes_that_use_the_database_have_grants_there() -> None:
    assert set(DATABASE_ROLES) == {Role.CONSUMER, Role.STREAM, Role.GATEWAY, Role.ONCALL}
    for role in (Role.UPSTREAM, Role.ANALYTICS, Role.MIGRATE):
        assert pg_grants(role) == ()


def test_the_gateway_only_reads_the_columns_it_looks_up() -> None:
    grants = pg_grants(Role.GATEWAY)
    assert {privilege for grant in grants for privilege in grant.privileges} == {"SELECT"}
    assert all(grant.columns for grant in grants)
    users = [grant for grant in grants if grant.name == "users"]
    assert [grant.columns for grant in users] == [("id",)]


def test_the_consumer_publishes_a_store_but_cannot_give_it_away_or_flip_the_switch() -> None:
    updates = {
        grant.name: grant.columns
        for grant in pg_grants(Role.CONSUMER)
        if "UPDATE" in grant.privileges
    }
    assert "owner_id" not in updates["stores"]
    assert "slug" not in updates["stores"]
    assert "status" in updates["stores"]
    assert updates["publish_control"] == ("id",)


def test_only_the_consumer_takes_the_ledger_owner_and_it_never_logs_in() -> None:
    sql = render()
    # (name, attributes it is created with, attribute brought back where it drifted)
    assert f"('{LEDGER_OWNER}', 'NOLOGIN', 'NOLOGIN')" in sql
    assert f"GRANT {LEDGER_OWNER} TO store_publish_consumer;" in sql
    assert sql.count(f"GRANT {LEDGER_OWNER} TO") == 1
    assert "('store_publish_consumer', 'LOGIN NOINHERIT', 'NOINHERIT')" in sql


def test_each_privilege_of_a_grant_gets_its_column_list() -> None:
    flat = " ".join(render().split())
    assert (
        "GRANT SELECT (paused, reason, changed_by, changed_at), "
        "INSERT (paused, reason, changed_by, changed_at) ON TABLE publish_control_history "
        "TO store_publish_stream;"
    ) in flat


def test_a_role_dsn_is_the_admin_dsn_with_the_role_as_its_user() -> None:
    admin = "postgresql://postgres:secret@127.0.0.1:15432/store_publish?sslmode=disable"
    assert (
        role_dsn(admin, Role.GATEWAY)
        == "postgresql://store_publish_gateway@127.0.0.1:15432/store_publish?sslmode=disable"
    )
    assert role_dsn("postgresql://127.0.0.1/db", Role.CONSUMER, password="p@ss:/") == (
        "postgresql://store_publish_consumer:p%40ss%3A%2F@127.0.0.1/db"
    )


def test_a_missing_privilege_is_one_line_naming_the_role_the_privilege_and_the_object() -> None:
    lines = [
        MissingPrivilege("store_publish_consumer", "UPDATE", "stores", ("status",)).describe(),
        MissingPrivilege("store_publish_gateway", "SELECT", "users").describe(),
        MissingPrivilege("store_publish_stream", "EXISTS", "").describe(),
        MissingPrivilege("store_publish_consumer", "MEMBERSHIP", LEDGER_OWNER).describe(),
    ]
    assert lines == [
        "database: role store_publish_consumer lacks UPDATE (status) on stores",
        "database: role store_publish_gateway lacks SELECT on users",
        "database: role store_publish_stream does not exist (run `store-publish migrate`)",
        f"database: role store_publish_consumer is not a member of {LEDGER_OWNER}",
    ]


def test_the_grants_shown_in_the_security_docs_are_those_applied() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    section = docs[docs.index("## PostgreSQL roles") :]
    shown = section[section.index("```sql\n") + len("```sql\n") :]
    shown = shown[: shown.index("```")]
    assert "GRANT" in shown
    assert shown in render()
