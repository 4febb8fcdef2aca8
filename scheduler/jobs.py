"""Which periodic jobs carebot runs. Job bodies are a few lines: a service call."""

from __future__ import annotations

from bot.services import Services
from scheduler.core import JobScheduler


def register_jobs(scheduler: JobScheduler, services: Services) -> None:
    """Add every periodic job. Feature modules add theirs here."""
