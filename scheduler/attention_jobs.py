"""The SLA check: every ``attention.sla.check_seconds``, once per period across replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services
from scheduler.core import Job, JobScheduler

#: Interval periods count from a fixed start, so every replica agrees on them.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SLA_JOB = "sla_check"


def register(scheduler: JobScheduler, services: Services) -> None:
    seconds = services.config.attention.sla.check_seconds
    scheduler.add(Job(
        SLA_JOB,
        IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=UTC),
        lambda fire_time: services.attention.check_sla(fire_time),
        # A missed check is worthless once the next one is due; a check that
        # hangs is taken over by another replica after two periods.
        grace=timedelta(seconds=seconds),
        lease=timedelta(seconds=max(60, 2 * seconds)),
    ))
