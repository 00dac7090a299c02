"""Database engine, sessions and the schema-version check shared by the API, CLI and workers."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.core.config import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


# Every engine this process made, so that a forked child can drop the pools it inherited.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


class Base(DeclarativeBase):
    """Declarative base for every table."""


@lru_cache
def engine_for(url: str) -> Engine:
    """One engine per URL and process; see `dispose_after_fork` for the process part."""
    engine = _create(url)
    _ENGINES.add(engine)
    return engine


def dispose_after_fork() -> None:
    """Give a forked child fresh connection pools (Celery's prefork children, any fork).

    The parent may have opened connections before forking (the worker checks the schema
    first); a child that used them would share a socket with its parent and its siblings, and
    PostgreSQL sees one session interleaving several conversations ("can't change 'autocommit'
    now", "unexpected result EMPTY_QUERY"). `close=False` drops the inherited connections
    without closing them, since closing would end the parent's sessions too.
    """
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=dispose_after_fork)


def _create(url: str) -> Engine:
    """SQLite gets WAL and a busy timeout so API and worker can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


def session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error (workers, CLI)."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_db() -> Iterator[Session]:
    """FastAPI dependency: one session per request; routes commit explicitly."""
    session = session_factory()()
    try:
        yield session
    finally:
        session.close()
