"""Run each periodic job once per period, across restarts and replicas.

APScheduler 3's job stores cannot be shared between processes (its FAQ says
so), so carebot uses APScheduler for what it is good at — cron and interval
triggers with timezones, and an in-process background timer — and lets the
database decide who runs a period: every replica ticks, computes the latest
scheduled fire time that is due, and tries to insert ``(job, fire_time)`` into
``job_run``; the one insert that succeeds runs the job. A restart finds the row
and does not run the period again; a replica that dies mid-run leaves a lease
that expires, and another replica takes the period over. A run that failed is
retried the same way once its lease has passed, as long as the period is still
within the job's grace (job bodies are idempotent per period). This holds on SQLite
and PostgreSQL alike, and needs nothing but the database carebot already has.

Tests drive ``tick(now)`` with a controllable clock instead of the timer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from storage import jobs
from storage.db import Engine, session_scope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A periodic job.

    Attributes:
        name: unique, stable name (it keys the once-per-period record).
        trigger: an APScheduler trigger (``CronTrigger(hour=9, timezone=...)``,
            ``IntervalTrigger(minutes=1)``...); its timezone is the job's.
        run: the body; receives the scheduled fire time of the period it runs.
        grace: how late a period may still run (after downtime); older missed
            periods are skipped, several missed ones coalesce into the latest.
        lease: how long a run may take before another replica may take it over.
    """

    name: str
    trigger: BaseTrigger
    run: Callable[[datetime], object]
    grace: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=10)


def latest_due(trigger: BaseTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The latest fire time in ``(now - grace, now]``, or None."""
    start = now - grace
    fire = trigger.get_next_fire_time(None, start)
    latest: datetime | None = None
    while fire is not None and fire <= now:
        if fire > start:
            latest = fire
        nxt = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        if nxt is None or nxt <= fire:
            break
        fire = nxt
    return latest


class JobScheduler:
    """Ticks every job; the database decides which replica runs a period."""

    def __init__(self, engine: Engine, *, owner: str, clock: Callable[[], datetime],
                 tick_seconds: float = 10.0) -> None:
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.jobs: dict[str, Job] = {}
        self._timer: BackgroundScheduler | None = None

    def add(self, job: Job) -> None:
        if job.name in self.jobs:
            raise ValueError(f"job {job.name!r} is already scheduled")
        self.jobs[job.name] = job

    def tick(self, now: datetime | None = None) -> list[tuple[str, datetime]]:
        """Run every job whose current period is due and unclaimed. Returns what ran."""
        now = now or self.clock()
        ran: list[tuple[str, datetime]] = []
        for job in self.jobs.values():
            fire_time = latest_due(job.trigger, now, job.grace)
            if fire_time is None:
                continue
            with session_scope(self.engine) as session:
                claimed = jobs.try_claim(session=session, job=job.name, fire_time=fire_time,
                                         owner=self.owner, now=now, lease=job.lease)
            if not claimed:
                continue
            error: str | None = None
            try:
                job.run(fire_time)
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the rest
                log.exception("job %s for %s failed", job.name, fire_time.isoformat())
                error = f"{type(exc).__name__}: {exc}"
            with session_scope(self.engine) as session:
                jobs.finish(session=session, job=job.name, fire_time=fire_time,
                            owner=self.owner, now=self.clock(), error=error)
            ran.append((job.name, fire_time))
        return ran

    def start(self) -> None:
        """Tick in the background every ``tick_seconds``."""
        self._timer = BackgroundScheduler(timezone="UTC")
        # The timer runs on the wall clock: "now" for its first tick is the real now, not
        # the injected business clock. (Given a business clock set days in the past, it
        # counted every missed interval since then before it could stop: 8 s of CPU.)
        self._timer.add_job(self._safe_tick, IntervalTrigger(seconds=self.tick_seconds),
                            id="carebot-tick", max_instances=1, coalesce=True,
                            next_run_time=datetime.now(UTC))
        self._timer.start()

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
            log.exception("scheduler tick failed")

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.shutdown(wait=True)
            self._timer = None
