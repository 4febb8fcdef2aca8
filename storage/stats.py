"""Queries for stats, digests, spike alerts and exports; they return plain rows.

The workflow's tables (``conversion``, ``mention_flag``) and the priority
table (``mention_attention``) are read by name through lightweight table
constructs, so stats work (with those figures empty) on a schema that does not
have them yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import UniqueConstraint
from sqlmodel import Column, Field, Session, SQLModel, col, select

from bot.stats import ClassificationRow, EngagementRow, MentionRow
from storage.db import dialect_insert
from storage.tables import Classification, Engagement, Mention, UTCDateTime, utcnow


class DigestLog(SQLModel, table=True):
    """One scheduled message per (kind, period, target): the insert decides it is sent once."""

    __tablename__ = "digest_log"
    __table_args__ = (UniqueConstraint("kind", "period", "target", name="uq_digest_log"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    period: str = Field(max_length=64)
    target: str = Field(max_length=64)
    outbox_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))


class SpikeState(SQLModel, table=True):
    """When a spike key was last hot and last alerted (the cooldown's memory)."""

    __tablename__ = "spike_state"

    key: str = Field(primary_key=True, max_length=255)
    last_hot_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_alert_at: datetime | None = Field(default=None,
                                           sa_column=Column(UTCDateTime(), nullable=True))
    alerts: int = 0


_conversion = sa.table("conversion", sa.column("mention_id"), sa.column("before"),
                       sa.column("after"), sa.column("score"), sa.column("agent"))
_flag = sa.table("mention_flag", sa.column("mention_id"), sa.column("flag"),
                 sa.column("actor"), sa.column("created_at", UTCDateTime()))
_attention = sa.table("mention_attention", sa.column("mention_id"), sa.column("priority"),
                      sa.column("sla_minutes"))


def _has_table(session: Session, name: str) -> bool:
    return sa.inspect(session.connection()).has_table(name)


def _in_range(start: datetime, end: datetime, department: str | None) -> list[Any]:
    where = [col(Mention.ingested_at) >= start, col(Mention.ingested_at) < end]
    if department is not None:
        where.append(col(Mention.department) == department)
    return where


def mention_rows(*, session: Session, start: datetime, end: datetime,
                 department: str | None = None) -> list[MentionRow]:
    """Mentions that arrived in ``[start, end)`` (optionally of one department), by id."""
    has_priority = _has_table(session, "mention_attention")
    query = (sa.select(Mention, _attention.c.priority, _attention.c.sla_minutes).outerjoin(
        _attention, _attention.c.mention_id == Mention.id) if has_priority
        else sa.select(Mention, sa.null(), sa.null()))
    query = query.where(*_in_range(start, end, department))
    rows = []
    for result in session.execute(query.order_by(col(Mention.id))).all():
        mention, priority, sla = result[0], result[1], result[2]
        rows.append(MentionRow(
            id=int(mention.id), ingested_at=mention.ingested_at, source=mention.source,
            author=mention.author, text=mention.text, url=mention.url, lang=mention.lang,
            category=mention.category, department=mention.department,
            channel=mention.channel, sentiment=mention.sentiment,
            sentiment_score=mention.sentiment_score, author_reach=mention.author_reach,
            published_at=mention.published_at,
            priority=int(priority) if priority is not None else None,
            sla_minutes=int(sla) if sla is not None else None))
    return rows


def engagement_rows(*, session: Session, start: datetime, end: datetime
                    ) -> dict[int, EngagementRow]:
    """Engagements (with conversion and star) of the mentions that arrived in the range."""
    table = Engagement.__table__  # type: ignore[attr-defined]
    wanted = ("claimed_by", "claimed_at", "responded_by", "first_response_at", "resolved_at",
              "escalated_at", "first_claimed_at")
    present = [table.c[name] for name in wanted if name in table.c]
    in_range = sa.select(col(Mention.id)).where(*_in_range(start, end, None))
    rows = session.execute(sa.select(table.c.mention_id, *present)
                           .where(table.c.mention_id.in_(in_range))).mappings().all()
    conversions: dict[int, Any] = {}
    if _has_table(session, "conversion"):
        for row in session.execute(sa.select(_conversion).where(
                _conversion.c.mention_id.in_(in_range))).mappings():
            conversions[int(row["mention_id"])] = row
    stars: dict[int, tuple[str, datetime]] = {}
    kb: set[int] = set()
    if _has_table(session, "mention_flag"):
        for row in session.execute(sa.select(_flag).where(
                _flag.c.mention_id.in_(in_range)).order_by(_flag.c.created_at)).mappings():
            if row["flag"] == "star":
                stars.setdefault(int(row["mention_id"]), (row["actor"], row["created_at"]))
            elif row["flag"] == "kb":
                kb.add(int(row["mention_id"]))
    result: dict[int, EngagementRow] = {}
    for row in rows:
        mid = int(row["mention_id"])
        conv = conversions.get(mid)
        star = stars.get(mid)
        claimed_at = row.get("claimed_at") or row.get("first_claimed_at")
        result[mid] = EngagementRow(
            mention_id=mid, claimed_by=row.get("claimed_by"), claimed_at=claimed_at,
            responded_by=row.get("responded_by"), responded_at=row.get("first_response_at"),
            resolved_at=row.get("resolved_at"), escalated_at=row.get("escalated_at"),
            conversion_before=conv["before"] if conv else None,
            conversion_after=conv["after"] if conv else None,
            conversion_score=float(conv["score"]) if conv and conv["score"] is not None
            else None,
            starred=star is not None, starred_by=star[0] if star else None,
            starred_at=star[1] if star else None, kb_candidate=mid in kb)
        if conv is not None and result[mid].responded_by is None and conv["agent"]:
            result[mid] = _with_agent(result[mid], str(conv["agent"]))
    return result


def _with_agent(row: EngagementRow, agent: str) -> EngagementRow:
    return replace(row, responded_by=agent)


def classification_rows(*, session: Session, start: datetime, end: datetime
                        ) -> list[ClassificationRow]:
    """The classification history of the mentions that arrived in the range."""
    in_range = sa.select(col(Mention.id)).where(*_in_range(start, end, None))
    query = select(Classification).where(col(Classification.mention_id).in_(in_range)) \
        .order_by(col(Classification.created_at), col(Classification.id))
    return [ClassificationRow(c.mention_id, c.category, c.method, c.created_at, c.actor,
                              c.confidence) for c in session.exec(query)]


EXPORT_COLUMNS: tuple[str, ...] = (
    "id", "ingested_at", "published_at", "source", "external_id", "author", "author_reach",
    "url", "lang", "category", "confidence", "sentiment", "department", "channel", "text",
)


#: The conversion tag of each mention, after the engagement columns.
CONVERSION_EXPORT = {"conversion_before": "before", "conversion_after": "after",
                     "conversion_score": "score"}


def _engagement_export() -> list[Any]:
    engagement = Engagement.__table__  # type: ignore[attr-defined]
    return [c for c in engagement.c if c.name not in ("mention_id", "version")]


def export_columns() -> list[str]:
    """The CSV header: the same whether the period has rows or not."""
    return [*EXPORT_COLUMNS, *(c.name for c in _engagement_export()), *CONVERSION_EXPORT]


def export_rows(*, session: Session, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Mentions of the range with every engagement column and the conversion tag, for
    the CSV export (keys in ``export_columns()`` order)."""
    engagement = Engagement.__table__  # type: ignore[attr-defined]
    has_conversion = _has_table(session, "conversion")
    conversion = [(_conversion.c[name] if has_conversion else sa.null()).label(label)
                  for label, name in CONVERSION_EXPORT.items()]
    query = (sa.select(*[getattr(Mention, name) for name in EXPORT_COLUMNS],
                       *_engagement_export(), *conversion)
             .outerjoin(engagement, engagement.c.mention_id == Mention.id))
    if has_conversion:
        query = query.outerjoin(_conversion, _conversion.c.mention_id == Mention.id)
    query = query.where(*_in_range(start, end, None)).order_by(col(Mention.id))
    return [dict(row) for row in session.execute(query).mappings()]


def try_record_digest(*, session: Session, kind: str, period: str, target: str,
                      now: datetime) -> DigestLog | None:
    """Record that ``kind`` for ``period`` goes to ``target``; ``None`` if it already has."""
    insert = dialect_insert(session)
    inserted = session.execute(
        insert(DigestLog).values(kind=kind, period=period, target=target, created_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "period", "target"])
        .returning(DigestLog.__table__.c.id)  # type: ignore[attr-defined]
    ).first()
    if inserted is None:
        return None
    return session.get(DigestLog, int(inserted[0]))


def set_digest_outbox(*, session: Session, log: DigestLog, outbox_id: int) -> None:
    log.outbox_id = outbox_id
    session.add(log)


def digest_log(*, session: Session, kind: str | None = None) -> list[DigestLog]:
    query = select(DigestLog).order_by(col(DigestLog.id))
    if kind is not None:
        query = query.where(DigestLog.kind == kind)
    return list(session.exec(query))


def spike_last_hot(*, session: Session, keys: Sequence[str]) -> dict[str, datetime]:
    if not keys:
        return {}
    rows = session.exec(select(SpikeState).where(col(SpikeState.key).in_(list(keys))))
    return {row.key: row.last_hot_at for row in rows}


def mark_spikes(*, session: Session, hot: Sequence[str], alerted: Sequence[str],
                now: datetime) -> None:
    """Move ``last_hot_at`` of every hot key to ``now``; count an alert for ``alerted``."""
    for key in hot:
        state = session.get(SpikeState, key) or SpikeState(key=key, last_hot_at=now)
        state.last_hot_at = now
        if key in alerted:
            state.last_alert_at = now
            state.alerts += 1
        session.add(state)
