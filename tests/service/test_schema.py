"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations


def test_migrations_match_the_models(activate):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from app.core.db import get_engine
    from app.core.tables import Base

    with get_engine().connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
