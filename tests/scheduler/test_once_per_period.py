"""Periodic jobs run once per period across restarts and replicas."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.core import Job, JobScheduler, latest_due
from storage import jobs
from storage.db import Engine, session_scope


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_latest_due_is_timezone_aware() -> None:
    daily = CronTrigger(hour=9, minute=0, timezone="Europe/Dublin")
    # 09:00 Dublin is 09:00 UTC in winter and 08:00 UTC in summer.
    assert latest_due(daily, datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
                      timedelta(hours=1)) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert latest_due(daily, datetime(2026, 7, 1, 8, 10, tzinfo=UTC),
                      timedelta(hours=1)) == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert latest_due(daily, datetime(2026, 11, 23, 8, 59, tzinfo=UTC),
                      timedelta(hours=1)) is None
    # Past the grace period a missed digest is skipped, not sent late.
    assert latest_due(daily, datetime(2026, 11, 23, 10, 30, tzinfo=UTC),
                      timedelta(hours=1)) is None


def test_two_schedulers_on_one_database_run_each_period_once(engine: Engine) -> None:
    clock = Clock(datetime(2026, 11, 23, 8, 58, tzinfo=UTC))
    ran: list[tuple[str, datetime]] = []
    lock = threading.Lock()

    def body(name: str):
        def run(fire_time: datetime) -> None:
            with lock:
                ran.append((name, fire_time))
        return run

    replicas = [JobScheduler(engine, owner=f"replica-{i}", clock=clock) for i in range(2)]
    for replica in replicas:
        replica.add(Job("digest", CronTrigger(hour=9, timezone="Europe/Dublin"), body("digest")))
        replica.add(Job("sla", IntervalTrigger(minutes=1, start_date=datetime(2026, 1, 1,
                                                                              tzinfo=UTC)),
                        body("sla"), grace=timedelta(minutes=1)))
    for _ in range(5):  # five minutes, each replica ticking several times a minute
        for _ in range(3):
            threads = [threading.Thread(target=r.tick) for r in replicas]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            clock.advance(seconds=20)
    digests = [t for name, t in ran if name == "digest"]
    slas = [t for name, t in ran if name == "sla"]
    assert digests == [datetime(2026, 11, 23, 9, 0, tzinfo=UTC)]
    assert len(slas) == len(set(slas)) == 5

    # A restart (new scheduler, same database) at the same minute does not rerun.
    restarted = JobScheduler(engine, owner="replica-9", clock=clock)
    restarted.add(Job("digest", CronTrigger(hour=9, timezone="Europe/Dublin"), body("digest")))
    assert restarted.tick() == []


def test_failed_run_is_recorded_and_dead_owner_is_taken_over(engine: Engine) -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC))
    trigger = CronTrigger(hour=9, timezone="UTC")
    broken = JobScheduler(engine, owner="a", clock=clock)
    broken.add(Job("digest", trigger, lambda t: 1 / 0))
    broken.tick()
    with session_scope(engine) as session:
        [run] = jobs.runs(session=session, job="digest")
        assert run.status == "failed" and "ZeroDivisionError" in (run.error or "")

    # A replica that claimed a period and died: after its lease, another takes over.
    fire = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        assert jobs.try_claim(session=session, job="digest", fire_time=fire, owner="dead",
                              now=fire, lease=timedelta(minutes=10))
    clock.now = fire + timedelta(minutes=5)
    done: list[datetime] = []
    survivor = JobScheduler(engine, owner="b", clock=clock)
    survivor.add(Job("digest", trigger, done.append))
    assert survivor.tick() == []  # still within the dead owner's lease
    clock.now = fire + timedelta(minutes=11)
    assert survivor.tick() == [("digest", fire)]
    assert done == [fire]
