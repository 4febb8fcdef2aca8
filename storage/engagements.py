"""Engagement state changes, each one a single conditional update."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col

from storage.tables import Engagement


def get(*, session: Session, mention_id: int) -> Engagement | None:
    return session.get(Engagement, mention_id)


def try_claim(*, session: Session, mention_id: int, user: str, now: datetime) -> bool:
    """Claim an unclaimed mention. Exactly one of many concurrent callers wins."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id, col(Engagement.claimed_by).is_(None))
        .values(claimed_by=user, claimed_at=now, version=Engagement.version + 1,
                first_claimed_at=func.coalesce(Engagement.first_claimed_at, now))
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def try_unclaim(*, session: Session, mention_id: int, user: str) -> bool:
    """Release a claim held by ``user``."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id, col(Engagement.claimed_by) == user)
        .values(claimed_by=None, claimed_at=None, version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]
