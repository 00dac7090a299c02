"""Alembic driven from code: `leakgate db upgrade` and the start-up schema check."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.core.config import get_settings
from app.core.db import MIGRATIONS_DIR, get_engine


class SchemaOutOfDate(RuntimeError):
    """The database is behind the code; the operator must run the migrations."""


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; URLs may hold %-escapes (search_path options).
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> None:
    get_settings().ensure_dirs()
    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision() -> str | None:
    with get_engine().connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema() -> None:
    """Refuse to serve against a database that is not at the code's schema head."""
    current, head = current_revision(), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at {current or 'nothing (empty database)'}, the code needs "
            f"{head}; run `leakgate db upgrade` (database: {get_engine().url!r})"
        )
