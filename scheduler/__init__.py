"""Periodic jobs: APScheduler for timing, the database for once-per-period."""

from scheduler.core import Job, JobScheduler

__all__ = ["Job", "JobScheduler"]
