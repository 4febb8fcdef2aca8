"""Human corrections of classifications, kept as training data for the classifier.

Staff reclassify a card (or mark it noise) and the correction lands here. The
classification engineer reads it with :func:`feedback_examples`.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.workflow_tables import TrainingFeedback


def record(*, session: Session, mention_id: int, text: str, lang: str | None,
           predicted: str | None, category: str, actor: str, now: datetime) -> TrainingFeedback:
    """Store one correction: ``text`` is ``category`` (the classifier said ``predicted``)."""
    row = TrainingFeedback(mention_id=mention_id, text=text, lang=lang, predicted=predicted,
                           category=category, actor=actor, created_at=now)
    session.add(row)
    session.flush()
    return row


def feedback_rows(*, session: Session, since: datetime | None = None) -> list[TrainingFeedback]:
    """Every correction, oldest first (a mention corrected twice appears twice)."""
    query = select(TrainingFeedback)
    if since is not None:
        query = query.where(col(TrainingFeedback.created_at) >= since)
    return list(session.exec(query.order_by(col(TrainingFeedback.id))))


def feedback_examples(session: Session, *, since: datetime | None = None
                      ) -> list[tuple[str, str]]:
    """Training pairs ``(text, category)``: the latest human label of each corrected mention.

    Args:
        session: an open session.
        since: only corrections made at or after this time.
    """
    latest: dict[int, TrainingFeedback] = {}
    for row in feedback_rows(session=session, since=since):
        latest[row.mention_id] = row
    return [(row.text, row.category) for row in latest.values()]
