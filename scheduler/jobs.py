"""Which periodic jobs carebot runs. Job bodies are a few lines: a service call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services
from bot.sources.poller import Poller
from scheduler import attention_jobs, stats_jobs
from scheduler.core import Job, JobScheduler


def register_jobs(scheduler: JobScheduler, services: Services) -> None:
    """Add every periodic job. Feature modules add theirs here."""
    attention_jobs.register(scheduler, services)
    add_source_jobs(scheduler, Poller.from_services(services))
    stats_jobs.register(scheduler, services)


#: Interval triggers count from a fixed start, so every replica agrees on the periods.
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def add_source_jobs(scheduler: JobScheduler, poller: Poller) -> None:
    """One job per listening source, every ``poll_seconds`` (missed polls coalesce)."""
    for name, seconds in poller.intervals().items():
        scheduler.add(Job(f"source:{name}",
                          IntervalTrigger(seconds=seconds, start_date=EPOCH, timezone=UTC),
                          lambda _fire, name=name: poller.poll(name),  # type: ignore[misc]
                          grace=timedelta(seconds=seconds),
                          lease=timedelta(seconds=max(60, 2 * seconds))))
