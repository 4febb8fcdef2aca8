"""Listening-source state: durable cursors, health, counters, and what was seen.

``source_state`` (in ``tables.py``) holds one row per (source, query) with the
query's cursor and counters, plus one row per source with ``query_key="*"``
holding the source's health (last success, last error, failures, backoff).
``source_seen`` (here) remembers every item a source handed over and what
became of it, with fingerprints for deduplication across sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, UniqueConstraint, and_, or_
from sqlmodel import Field, Session, SQLModel, col, select

from storage.db import dialect_insert
from storage.tables import Mention, SourceState, UTCDateTime, utcnow

HEALTH = "*"
INGESTED = "ingested"


class SourceSeen(SQLModel, table=True):
    """One item a listening source produced, and its verdict.

    ``verdict`` is ``ingested``, ``duplicate`` (found first by another source)
    or a noise reason (``noise:excluded_term``...). ``url_key``/``text_key``
    and ``author_key`` are fingerprints (see ``bot/sources/dedup.py``).
    """

    __tablename__ = "source_seen"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_source_seen"),
        Index("ix_source_seen_url_key", "url_key"),
        Index("ix_source_seen_text_key", "text_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    url_key: str | None = Field(default=None, max_length=64)
    text_key: str = Field(max_length=64)
    author_key: str = Field(max_length=255)
    verdict: str = Field(max_length=64)
    seen_at: datetime = Field(default_factory=utcnow,
                              sa_column=Column(UTCDateTime(), nullable=False))


@dataclass(frozen=True)
class Seen:
    """A fingerprinted item about to be recorded."""

    source: str
    external_id: str
    url_key: str | None
    text_key: str
    author_key: str
    verdict: str


def ensure_state(*, session: Session, source: str, query_key: str) -> SourceState:
    """The state row of (source, query), created empty when missing (race-safe)."""
    stmt = (dialect_insert(session)(SourceState)
            .values(source=source, query_key=query_key, consecutive_failures=0, counters={})
            .on_conflict_do_nothing(index_elements=["source", "query_key"]))
    session.execute(stmt)
    state = session.exec(select(SourceState).where(SourceState.source == source,
                                                   SourceState.query_key == query_key)).one()
    return state


def get_cursor(*, session: Session, source: str, query_key: str) -> str | None:
    row = session.exec(select(SourceState.cursor).where(
        SourceState.source == source, SourceState.query_key == query_key)).first()
    return row


def save_page(*, session: Session, source: str, query_key: str, cursor: str | None,
              counts: dict[str, int], now: datetime) -> None:
    """Store a query's new cursor and add ``counts`` to its counters."""
    state = ensure_state(session=session, source=source, query_key=query_key)
    state.cursor = cursor
    merged = dict(state.counters or {})
    for key, value in counts.items():
        if value:
            merged[key] = int(merged.get(key, 0)) + value
    state.counters = merged
    state.last_success_at = now
    state.last_error = None
    session.add(state)


def record_success(*, session: Session, source: str, now: datetime,
                   backoff_until: datetime | None = None) -> None:
    """A poll of every query of ``source`` went through."""
    health = ensure_state(session=session, source=source, query_key=HEALTH)
    health.last_success_at = now
    health.consecutive_failures = 0
    health.backoff_until = backoff_until
    session.add(health)


def record_failure(*, session: Session, source: str, query_key: str, error: str,
                   now: datetime) -> int:
    """Note a failed poll; returns the source's consecutive failures so far."""
    for key in (HEALTH, query_key):
        state = ensure_state(session=session, source=source, query_key=key)
        state.last_error = error[:500]
        state.last_error_at = now
        if key == HEALTH:
            state.consecutive_failures += 1
            failures = state.consecutive_failures
        session.add(state)
    return failures


def set_backoff(*, session: Session, source: str, until: datetime | None) -> None:
    health = ensure_state(session=session, source=source, query_key=HEALTH)
    health.backoff_until = until
    session.add(health)


def backoff_until(*, session: Session, source: str) -> datetime | None:
    return session.exec(select(SourceState.backoff_until).where(
        SourceState.source == source, SourceState.query_key == HEALTH)).first()


def all_states(*, session: Session) -> list[SourceState]:
    return list(session.exec(select(SourceState).order_by(col(SourceState.source),
                                                           col(SourceState.query_key))))


# -- what was seen -------------------------------------------------------------

def handled(*, session: Session, source: str, external_ids: Sequence[str]) -> set[str]:
    """The ids of ``source`` already dealt with.

    An item recorded as ``ingested`` whose mention is missing (the process died
    between recording and ingesting) is not handled: it is ingested again.
    """
    if not external_ids:
        return set()
    rows = session.exec(select(SourceSeen.external_id, SourceSeen.verdict).where(
        SourceSeen.source == source, col(SourceSeen.external_id).in_(list(external_ids)))).all()
    done = {ext for ext, verdict in rows if verdict != INGESTED}
    maybe = [ext for ext, verdict in rows if verdict == INGESTED]
    if maybe:
        stored = session.exec(select(Mention.external_id).where(
            Mention.source == source, col(Mention.external_id).in_(maybe))).all()
        done.update(stored)
    return done


def find_duplicate(*, session: Session, item: Seen) -> SourceSeen | None:
    """An ingested item of another (source, id) with the same URL, or text and author."""
    same_text = and_(col(SourceSeen.text_key) == item.text_key,
                     col(SourceSeen.author_key) == item.author_key)
    same = (or_(col(SourceSeen.url_key) == item.url_key, same_text)
            if item.url_key else same_text)
    other = or_(col(SourceSeen.source) != item.source,
                col(SourceSeen.external_id) != item.external_id)
    return session.exec(select(SourceSeen).where(same, other,
                                                 SourceSeen.verdict == INGESTED).limit(1)).first()


def same_text_elsewhere(*, session: Session, item: Seen, since: datetime) -> bool:
    """The same text from a different author was seen since ``since`` (copy-paste spam)."""
    row = session.exec(select(SourceSeen.id).where(
        SourceSeen.text_key == item.text_key, SourceSeen.author_key != item.author_key,
        col(SourceSeen.seen_at) >= since).limit(1)).first()
    return row is not None


def record_seen(*, session: Session, items: Iterable[Seen], now: datetime) -> None:
    """Remember items and their verdicts; a retried ``ingested`` row is kept as is."""
    for item in items:
        stmt = (dialect_insert(session)(SourceSeen)
                .values(source=item.source, external_id=item.external_id, url_key=item.url_key,
                        text_key=item.text_key, author_key=item.author_key,
                        verdict=item.verdict, seen_at=now)
                .on_conflict_do_nothing(index_elements=["source", "external_id"]))
        session.execute(stmt)
