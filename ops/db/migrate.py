"""The database half of `store-publish migrate`: tracked SQL migrations, applied in order,
then the roles and their grants (`ops/db/roles.sql`, applied on every run).

Plain SQL files applied by a small runner rather than a migration framework: the pipeline
already speaks asyncpg, the files are readable by the platform's DBAs as they are, and the
runner is one advisory lock, one bookkeeping table and one transaction per file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from ops.db.roles import roles_sql

# Any constant works; it only has to be the same for every migrating process.
_MIGRATION_LOCK = 7_245_901


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    folder = resources.files("ops.db") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


class MigrationDrift(RuntimeError):
    """An applied migration's file changed since it ran."""


async def migrate_database(dsn: str) -> list[str]:
    """Apply the migrations not yet applied, in order, then the roles' grants, in one
    transaction; returns the versions applied now."""
    applied_now: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row["version"]: row["checksum"]
                for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for migration in load_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationDrift(
                            f"migration {migration.version} changed after it was applied"
                        )
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
                applied_now.append(migration.version)
            # Not tracked: applied on every run, so the grants converge on the file.
            await conn.execute(roles_sql())
    finally:
        await conn.close()
    return applied_now
