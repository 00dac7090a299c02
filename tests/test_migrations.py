"""Every migration upgrades and downgrades, one step at a time, on PostgreSQL and SQLite; the
policies' default index arrives with 0004 whether or not the database already has it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from app.core.migrate import alembic_config
from tests.utils.env import PG_ADMIN_URL

DEFAULT_INDEX = "uq_policies_tenant_default"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def revisions_in_order(url: str) -> list[tuple[str, str]]:
    """(revision, down revision or "base") from the first migration to the head."""
    script = ScriptDirectory.from_config(alembic_config(url))
    steps = []
    for rev in script.walk_revisions():
        assert rev.down_revision is None or isinstance(rev.down_revision, str), "no merges"
        steps.append((rev.revision, rev.down_revision or "base"))
    return list(reversed(steps))


def inspect(url: str) -> tuple[set[str], set[str]]:
    """The tables, and the index names on `policies` (empty when there is no such table)."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names()) - {"alembic_version"}
        indexes = (
            {ix["name"] for ix in inspector.get_indexes("policies") if ix["name"]}
            if "policies" in tables
            else set()
        )
        return tables, indexes
    finally:
        engine.dispose()


def test_each_migration_upgrades_and_downgrades(database_url: str) -> None:
    cfg = alembic_config(database_url)
    steps = revisions_in_order(database_url)
    assert [rev for rev, _ in steps][:4] == ["0001", "0002", "0003", "0004"]
    tables_after: dict[str, set[str]] = {}
    for revision, _ in steps:
        command.upgrade(cfg, revision)
        tables_after[revision] = inspect(database_url)[0]
    assert DEFAULT_INDEX in inspect(database_url)[1]
    for revision, down in reversed(steps):
        command.downgrade(cfg, down)
        expected = set() if down == "base" else tables_after[down]
        assert inspect(database_url)[0] == expected, f"downgrade of {revision}"
    assert inspect(database_url) == (set(), set())


def test_0004_adds_the_default_index_to_a_database_at_0003(database_url: str) -> None:
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "0003")
    assert DEFAULT_INDEX not in inspect(database_url)[1]
    command.upgrade(cfg, "0004")
    assert DEFAULT_INDEX in inspect(database_url)[1]
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, name, created_at) "
                    "VALUES ('t1', 't1', CURRENT_TIMESTAMP)"
                )
            )
        insert = sa.text(
            "INSERT INTO policies (id, tenant_id, model_name, rules, created_at, updated_at) "
            "VALUES (:id, 't1', NULL, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
        with engine.begin() as conn:
            conn.execute(insert, {"id": "p1"})
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"id": "p2"})
    finally:
        engine.dispose()


def test_0004_is_a_no_op_where_the_edited_0003_made_the_index(database_url: str) -> None:
    """Databases migrated while 0003 carried the index: 0004 must not fail on it."""
    cfg = alembic_config(database_url)
    command.upgrade(cfg, "0003")
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE UNIQUE INDEX {DEFAULT_INDEX} ON policies (tenant_id) "
                    "WHERE model_name IS NULL"
                )
            )
    finally:
        engine.dispose()
    command.upgrade(cfg, "0004")
    assert DEFAULT_INDEX in inspect(database_url)[1]
