"""Each source's health and counters, for ``/care sources``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from bot.services import Services
from storage import sources as repo
from storage.db import session_scope


@dataclass
class SourceHealth:
    """One source as managers see it.

    Attributes:
        counters: summed over the source's queries: ``fetched``, ``ingested``,
            ``seen`` (already handled), ``duplicate`` (found by another source
            first) and ``noise:<reason>`` for what the noise filter dropped.
    """

    name: str
    type: str
    enabled: bool = True
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    backoff_until: datetime | None = None
    counters: Counter[str] = field(default_factory=Counter)
    queries: int = 0

    def status(self, now: datetime) -> str:
        if not self.enabled:
            return "disabled"
        if self.backoff_until is not None and self.backoff_until > now and self.failures:
            return "backing off"
        if self.failures:
            return "failing"
        if self.last_success_at is None:
            return "never polled"
        return "ok"


def source_health(services: Services) -> list[SourceHealth]:
    """Health of every configured source (and of any that has state but left the config)."""
    by_name: dict[str, SourceHealth] = {
        s.name: SourceHealth(name=s.name, type=s.type, enabled=s.enabled)
        for s in services.config.sources
    }
    with session_scope(services.engine) as session:
        states = repo.all_states(session=session)
    for state in states:
        health = by_name.setdefault(state.source, SourceHealth(name=state.source, type="?",
                                                               enabled=False))
        if state.query_key == repo.HEALTH:
            health.last_success_at = state.last_success_at
            health.last_error = state.last_error
            health.last_error_at = state.last_error_at
            health.failures = state.consecutive_failures
            health.backoff_until = state.backoff_until
        else:
            health.queries += 1
            health.counters.update({k: int(v) for k, v in (state.counters or {}).items()})
    return list(by_name.values())
