"""Claims on periodic job runs (see ``JobRun``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import dialect_insert
from storage.tables import JobRun


def try_claim(*, session: Session, job: str, fire_time: datetime, owner: str, now: datetime,
              lease: timedelta) -> bool:
    """Claim the run of ``job`` for ``fire_time``; True for exactly one claimer.

    A run whose owner died (still ``running`` after its lease) is taken over, and so is
    one that failed (say the database restarted under it), once its lease has passed:
    the period is retried, not lost, while it is within its job's grace.
    """
    insert = dialect_insert(session)
    result = session.execute(
        insert(JobRun)
        .values(job=job, fire_time=fire_time, status="running", owner=owner, started_at=now,
                lease_until=now + lease)
        .on_conflict_do_nothing(index_elements=["job", "fire_time"])
        # RETURNING, not rowcount: psycopg reports no rowcount for this statement.
        .returning(JobRun.__table__.c.id)  # type: ignore[attr-defined]
    )
    if result.first() is not None:
        return True
    taken = session.execute(
        update(JobRun)
        .where(col(JobRun.job) == job, col(JobRun.fire_time) == fire_time,
               col(JobRun.status).in_(("running", "failed")), col(JobRun.lease_until) < now)
        .values(owner=owner, status="running", started_at=now, lease_until=now + lease)
    )
    return taken.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def finish(*, session: Session, job: str, fire_time: datetime, owner: str, now: datetime,
           error: str | None = None) -> None:
    session.execute(
        update(JobRun)
        .where(col(JobRun.job) == job, col(JobRun.fire_time) == fire_time,
               col(JobRun.owner) == owner)
        .values(status="failed" if error else "done", finished_at=now,
                error=error[:500] if error else None)
    )


def runs(*, session: Session, job: str | None = None) -> list[JobRun]:
    query = select(JobRun).order_by(col(JobRun.fire_time), col(JobRun.id))
    if job is not None:
        query = query.where(JobRun.job == job)
    return list(session.exec(query))


