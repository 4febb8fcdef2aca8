"""Engine, session scope and migrations.

The boundary (one Slack request, one ingest request, one job run) owns the
session: it opens ``session_scope`` and passes the session to services.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for carebot's access pattern.

    SQLite gets WAL, a busy timeout and foreign keys, so the HTTP threads and
    the background workers can share one file; PostgreSQL gets pre-ping.
    """
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit BEGIN is
            # deferred, and a deferred reader that later writes fails with
            # SQLITE_BUSY under concurrency instead of waiting).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: read-modify-write units of work
            # (claims, leases) then serialise and wait on busy_timeout.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def dialect_insert(session: Session) -> Any:
    """The ``insert`` construct of the session's dialect, for ``ON CONFLICT`` clauses
    (PostgreSQL and SQLite spell them the same way through SQLAlchemy)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


#: SQLSTATEs of a transaction PostgreSQL aborted to settle a conflict with another
#: (deadlock_detected, serialization_failure): running it again is the remedy.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)


def lost_conflict(error: BaseException) -> str | None:
    """The SQLSTATE if ``error`` is the database aborting a transaction to settle a conflict."""
    if not isinstance(error, DBAPIError):
        return None
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate if sqlstate in CONFLICT_SQLSTATES else None


def retry_conflicts(attempts: int = 3) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a unit of work again when the database aborted it to settle a conflict.

    For service methods that are one ``session_scope`` with no side effect
    outside the database before it commits (Slack calls go through the outbox),
    so running them again is safe. Anything else is raised at once.
    """

    def decorate(work: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(work)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for attempt in range(1, attempts + 1):
                try:
                    return work(*args, **kwargs)
                except DBAPIError as error:
                    sqlstate = lost_conflict(error)
                    if sqlstate is None or attempt == attempts:
                        raise
                    log.warning("%s lost a database conflict (SQLSTATE %s); running it again "
                                "(%d of %d)", work.__qualname__, sqlstate, attempt + 1, attempts)
                    time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter
            raise AssertionError("unreachable")

        return wrapper

    return decorate


def alembic_config(engine: Engine) -> Config:
    script_location = str(resources.files("storage").joinpath("migrations"))
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["engine"] = engine
    return cfg


#: Key of the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK = 0x6361726562  # "careb"


def newer_revisions(engine: Engine, cfg: Config) -> list[str]:
    """Revisions the database is at that this code does not know: a newer carebot migrated it."""
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    unknown = []
    for rev in current:
        try:
            script.get_revision(rev)
        except CommandError:  # alembic's "Can't locate revision"
            unknown.append(rev)
    return unknown


def _upgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config(engine)
    newer = newer_revisions(engine, cfg)
    if newer:
        # A rolling deploy (or its rollback): a newer version migrated the schema.
        # Migrations only add, so this version runs on it; alembic cannot upgrade
        # from revisions it does not know, and must not refuse to start.
        log.warning("the database schema is newer than this carebot (at %s); not migrating",
                    ", ".join(sorted(newer)))
        return
    command.upgrade(cfg, revision)


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (idempotent; safe from several replicas).

    Replicas starting together on PostgreSQL take turns through an advisory
    lock: the first migrates, the others then find the schema current. A schema
    a newer version already migrated is left as it is.
    """
    if engine.dialect.name != "postgresql":
        _upgrade(engine, revision)
        return
    with engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            _upgrade(engine, revision)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            lock_conn.commit()


__all__ = ["Engine", "Session", "dialect_insert", "make_engine", "migrate", "session_scope"]
