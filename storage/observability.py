"""Queries behind ``/metrics``: queue depths and source health, read at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.sources import HEALTH
from storage.tables import Mention, Outbox, SourceState


@dataclass(frozen=True)
class QueueSnapshot:
    """What is waiting, counted in the database (so every replica reports the same).

    Attributes:
        mentions_by_stage: mentions per pipeline stage (``new`` = not yet classified).
        outbox_by_status: outbox rows per status (``pending``, ``sent``, ``parked``...).
        source_failures: consecutive failed polls per listening source.
        source_counters: per source, its summed counters (``fetched``, ``ingested``...).
    """

    mentions_by_stage: dict[str, int] = field(default_factory=dict)
    outbox_by_status: dict[str, int] = field(default_factory=dict)
    source_failures: dict[str, int] = field(default_factory=dict)
    source_counters: dict[str, Counter[str]] = field(default_factory=dict)


def queue_snapshot(*, session: Session) -> QueueSnapshot:
    """Counts for the metrics collector: three grouped queries, no row scans in Python."""
    stages = session.execute(
        select(Mention.stage, func.count()).group_by(Mention.stage)).all()
    statuses = session.execute(
        select(Outbox.status, func.count()).group_by(Outbox.status)).all()
    failures: dict[str, int] = {}
    counters: dict[str, Counter[str]] = {}
    for state in session.exec(select(SourceState)):
        if state.query_key == HEALTH:
            failures[state.source] = int(state.consecutive_failures)
        else:
            counters.setdefault(state.source, Counter()).update(
                {str(k): int(v) for k, v in (state.counters or {}).items()
                 if isinstance(v, int | float)})
    return QueueSnapshot(
        mentions_by_stage={str(stage): int(n) for stage, n in stages},
        outbox_by_status={str(status): int(n) for status, n in statuses},
        source_failures=failures,
        source_counters=counters,
    )


def sources_of(*, session: Session, mention_ids: Sequence[int]) -> Counter[str]:
    """How many of ``mention_ids`` came from each source."""
    if not mention_ids:
        return Counter()
    rows = session.execute(
        select(Mention.source, func.count())
        .where(col(Mention.id).in_(list(mention_ids)))
        .group_by(Mention.source)).all()
    return Counter({str(source): int(n) for source, n in rows})
