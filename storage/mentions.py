"""Mention queries: idempotent insert, pipeline leasing, routing results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, not_, or_, update
from sqlmodel import Session, col, select

from bot.domain import MentionIn, Prediction
from storage.db import dialect_insert
from storage.tables import Classification, Engagement, Mention, SlackEvent


def insert_mentions(*, session: Session, items: Sequence[MentionIn], now: datetime) -> list[int]:
    """Store new mentions; a (source, external_id) already stored is skipped.

    Returns the ids of the mentions that were new. Safe under concurrency: the
    unique constraint decides, via ``INSERT .. ON CONFLICT DO NOTHING``.
    """
    if not items:
        return []
    insert = dialect_insert(session)
    new_ids: list[int] = []
    for item in items:
        stmt = (
            insert(Mention)
            .values(
                source=item.source,
                external_id=item.external_id,
                url=item.url,
                author=item.author,
                author_reach=item.author_reach,
                text=item.text,
                lang=item.lang,
                published_at=item.published_at,
                ingested_at=now,
                stage="new",
            )
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(Mention.__table__.c.id)  # type: ignore[attr-defined]
        )
        row = session.execute(stmt).first()
        if row is not None:
            new_ids.append(int(row[0]))
            session.add(Engagement(mention_id=int(row[0])))
    session.flush()
    return new_ids


def get_mention(*, session: Session, mention_id: int) -> Mention | None:
    return session.get(Mention, mention_id)


def lease_new(
    *, session: Session, owner: str, limit: int, now: datetime, lease: timedelta
) -> list[Mention]:
    """Lease up to ``limit`` unrouted mentions for classification.

    A lease that expired (its worker died) is taken over, so nothing stays
    stuck; the conditional update makes one worker win each mention.
    """
    free = or_(col(Mention.lease_until).is_(None), col(Mention.lease_until) < now)
    candidates = session.exec(
        select(Mention.id)
        .where(Mention.stage == "new", free)
        .order_by(col(Mention.id))
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: never wait on a row in use
    ).all()
    leased: list[int] = []
    for mention_id in candidates:
        result = session.execute(
            update(Mention)
            .where(and_(col(Mention.id) == mention_id, col(Mention.stage) == "new", free))
            .values(lease_owner=owner, lease_until=now + lease)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            leased.append(int(mention_id))  # type: ignore[arg-type]
    if not leased:
        return []
    return list(
        session.exec(select(Mention).where(col(Mention.id).in_(leased)).order_by(col(Mention.id)))
    )


def record_route(
    *,
    session: Session,
    mention: Mention,
    prediction: Prediction,
    department: str | None,
    channel: str | None,
    actor: str | None = None,
) -> None:
    """Store a classification and the resulting route on the mention."""
    session.add(
        Classification(
            mention_id=mention.id,  # type: ignore[arg-type]
            category=prediction.category.value,
            confidence=prediction.confidence,
            method=prediction.method,
            sentiment=prediction.sentiment.value if prediction.sentiment else None,
            sentiment_score=prediction.sentiment_score,
            lang=prediction.lang,
            actor=actor,
        )
    )
    mention.category = prediction.category.value
    mention.confidence = prediction.confidence
    mention.sentiment = prediction.sentiment.value if prediction.sentiment else None
    mention.sentiment_score = prediction.sentiment_score
    if prediction.lang and not mention.lang:
        mention.lang = prediction.lang
    mention.department = department
    mention.channel = channel
    mention.stage = "routed"
    mention.lease_owner = None
    mention.lease_until = None
    session.add(mention)


def latest_classification(*, session: Session, mention_id: int) -> Classification | None:
    return session.exec(
        select(Classification)
        .where(Classification.mention_id == mention_id)
        .order_by(col(Classification.id).desc())
    ).first()


def open_work() -> Any:
    """The condition that a posted mention still asks for work: not resolved, and not
    set aside as noise by a person (a card marked noise stays where it is; an unsure
    noise guess waiting in triage is still open). Needs ``Engagement`` joined."""
    by_person = exists().where(col(Classification.mention_id) == col(Mention.id),
                               col(Classification.actor).is_not(None))
    return and_(col(Engagement.resolved_at).is_(None),
                not_(and_(col(Mention.category) == "noise", by_person)))


def unclaimed_by_channel(*, session: Session) -> dict[str, int]:
    """Posted mentions nobody holds that still ask for work, per channel."""
    rows = session.execute(
        select(Mention.channel, func.count())
        .join(Engagement, col(Engagement.mention_id) == col(Mention.id))
        .where(Mention.stage == "routed", col(Mention.channel).is_not(None),
               col(Engagement.claimed_by).is_(None), open_work())
        .group_by(Mention.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}


def remember_event(*, session: Session, event_id: str, now: datetime) -> bool:
    """Record a Slack event id; False when it was already recorded."""
    insert = dialect_insert(session)
    result = session.execute(
        insert(SlackEvent)
        .values(event_id=event_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        # RETURNING, not rowcount: psycopg reports no rowcount for this statement.
        .returning(SlackEvent.__table__.c.event_id)  # type: ignore[attr-defined]
    )
    return result.first() is not None
