"""Scheduled digests and spike checks (registered from ``scheduler/jobs.py``).

The daily newsletter and the weekly leadership digest fire at local times of
the care config's timezone; the spike check runs every minute, so a spike
alerts within the detection window of its start. ``JobScheduler`` runs each
period once across replicas, and ``digest_log`` makes the queued messages
once-only even if a period runs again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services
from bot.services.reports import Reports
from handlers.digest_blocks import daily_messages, spike_messages, weekly_messages
from scheduler.core import Job, JobScheduler

DAILY = "stats.daily_digest"
WEEKLY = "stats.weekly_digest"
SPIKES = "stats.spike_check"


def register(scheduler: JobScheduler, services: Services) -> None:
    reports = Reports(services)
    cfg = services.config.stats
    tz = services.config.timezone
    if cfg.digests.daily_enabled:
        hour, minute = (int(x) for x in cfg.digests.daily_time.split(":"))
        scheduler.add(Job(DAILY, CronTrigger(hour=hour, minute=minute, timezone=tz),
                          lambda fire: reports.send_daily(fire, daily_messages),
                          grace=timedelta(hours=2)))
    if cfg.digests.weekly_enabled:
        hour, minute = (int(x) for x in cfg.digests.weekly_time.split(":"))
        scheduler.add(Job(WEEKLY, CronTrigger(day_of_week=cfg.digests.weekly_day, hour=hour,
                                              minute=minute, timezone=tz),
                          lambda fire: reports.send_weekly(fire, weekly_messages),
                          grace=timedelta(hours=6)))
    if cfg.spikes.enabled:
        # Check "now" rather than the fire time: a late tick still sees the latest arrivals.
        scheduler.add(Job(SPIKES, IntervalTrigger(minutes=1, start_date=datetime(2020, 1, 1,
                                                                                 tzinfo=UTC)),
                          lambda fire: reports.check_spikes(max(fire, services.clock()),
                                                            spike_messages),
                          grace=timedelta(minutes=2), lease=timedelta(minutes=2)))
