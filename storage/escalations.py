"""Escalations, their after-action reviews, and the durable outbound-HTTP queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from storage import leases
from storage.workflow_tables import AfterActionReview, Dispatch, Escalation, Reply

CRM_CASE = "crm_case"
SOURCE_REPLY = "source_reply"

# -- escalations -------------------------------------------------------------


def add_escalation(*, session: Session, mention_id: int, escalated_by: str, severity: str,
                   reason: str, context: str | None, automatic: bool, crm_status: str,
                   now: datetime) -> Escalation:
    row = Escalation(mention_id=mention_id, escalated_by=escalated_by, severity=severity,
                     reason=reason, context=context, automatic=automatic,
                     crm_status=crm_status, created_at=now)
    session.add(row)
    session.flush()
    return row


def get_escalation(*, session: Session, escalation_id: int) -> Escalation | None:
    return session.get(Escalation, escalation_id)


def latest_escalation(*, session: Session, mention_id: int) -> Escalation | None:
    return session.exec(
        select(Escalation).where(Escalation.mention_id == mention_id)
        .order_by(col(Escalation.id).desc())
    ).first()


def set_case(*, session: Session, escalation_id: int, case_id: str | None, status: str) -> None:
    row = session.get(Escalation, escalation_id)
    if row is not None:
        row.case_id = case_id
        row.crm_status = status
        session.add(row)


# -- after-action reviews ----------------------------------------------------


def save_review(*, session: Session, escalation: Escalation, reviewer: str, outcome: str,
                without_intervention: str, could_be_better: str | None, appropriate: bool,
                now: datetime) -> AfterActionReview:
    """Store the review of an escalation (a second submission replaces the first)."""
    row = review_for(session=session, escalation_id=escalation.id or 0)
    if row is None:
        row = AfterActionReview(escalation_id=escalation.id,  # type: ignore[arg-type]
                                mention_id=escalation.mention_id, reviewer=reviewer,
                                outcome=outcome, without_intervention=without_intervention,
                                could_be_better=could_be_better, appropriate=appropriate,
                                created_at=now)
    else:
        row.reviewer, row.outcome = reviewer, outcome
        row.without_intervention, row.could_be_better = without_intervention, could_be_better
        row.appropriate, row.created_at = appropriate, now
    session.add(row)
    session.flush()
    return row


def review_for(*, session: Session, escalation_id: int) -> AfterActionReview | None:
    return session.exec(
        select(AfterActionReview).where(AfterActionReview.escalation_id == escalation_id)
    ).first()


def reviews(*, session: Session) -> list[tuple[AfterActionReview, Escalation]]:
    rows = session.exec(
        select(AfterActionReview, Escalation)
        .join(Escalation, col(Escalation.id) == col(AfterActionReview.escalation_id))
        .order_by(col(AfterActionReview.id))
    ).all()
    return [(review, escalation) for review, escalation in rows]


# -- dispatch queue ----------------------------------------------------------


def enqueue(*, session: Session, kind: str, payload: dict[str, Any], now: datetime,
            mention_id: int | None = None, ref_id: int | None = None) -> Dispatch:
    """Record outbound HTTP work; it is sent by the dispatch worker, never inline."""
    row = Dispatch(kind=kind, payload=payload, mention_id=mention_id, ref_id=ref_id,
                   created_at=now, next_attempt_at=now)
    session.add(row)
    session.flush()
    return row


def lease_due(*, session: Session, owner: str, now: datetime, lease: timedelta,
              limit: int) -> list[Dispatch]:
    """Lease due rows, oldest first; a conditional update decides the one owner."""
    free = or_(col(Dispatch.lease_until).is_(None), col(Dispatch.lease_until) < now)
    ids = session.exec(
        select(Dispatch.id)
        .where(Dispatch.status == "pending", col(Dispatch.next_attempt_at) <= now, free)
        .order_by(col(Dispatch.id)).limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: never wait on a row in use
    ).all()
    leased: list[int] = []
    for item_id in ids:
        result = session.execute(
            update(Dispatch)
            .where(and_(col(Dispatch.id) == item_id, col(Dispatch.status) == "pending", free))
            .values(lease_owner=owner, lease_until=now + lease, attempts=Dispatch.attempts + 1)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            leased.append(int(item_id))  # type: ignore[arg-type]
    if not leased:
        return []
    return list(session.exec(select(Dispatch).where(col(Dispatch.id).in_(leased))
                             .order_by(col(Dispatch.id))))


def renew_lease(*, session: Session, item_id: int, owner: str, now: datetime,
                lease: timedelta) -> bool:
    """Extend ``owner``'s lease on a row it is about to send (:func:`storage.leases.renew`)."""
    return leases.renew(session=session, table=Dispatch, item_id=item_id, owner=owner, now=now,
                        lease=lease)


def _owned(session: Session, item_id: int, owner: str) -> Dispatch | None:
    row = session.get(Dispatch, item_id)
    if row is None or row.lease_owner != owner or row.status != "pending":
        return None
    return row


def mark_sent(*, session: Session, item_id: int, owner: str, now: datetime) -> bool:
    row = _owned(session, item_id, owner)
    if row is None:
        return False
    row.status, row.sent_at, row.lease_until, row.last_error = "sent", now, None, None
    session.add(row)
    return True


def mark_retry(*, session: Session, item_id: int, owner: str, retry_at: datetime,
               error: str) -> bool:
    row = _owned(session, item_id, owner)
    if row is None:
        return False
    row.next_attempt_at, row.lease_owner, row.lease_until = retry_at, None, None
    row.last_error = error[:500]
    session.add(row)
    return True


def mark_parked(*, session: Session, item_id: int, owner: str, error: str) -> bool:
    row = _owned(session, item_id, owner)
    if row is None:
        return False
    row.status, row.lease_until, row.last_error = "parked", None, error[:500]
    session.add(row)
    return True


def requeue_parked(*, session: Session, now: datetime) -> tuple[int, list[int]]:
    """Give every parked row a fresh set of attempts (after the receiver is fixed).

    A parked source reply goes out again only while it is still its mention's latest
    reply and unsent (``failed``, shown as copy-ready text): it is queued again. One
    that staff posted by hand meanwhile (``confirmed``) or replaced by a newer reply
    is cancelled instead — sending it would answer the customer twice.

    Returns:
        How many rows were requeued, and the mentions whose reply is queued again.
    """
    revived: list[int] = []
    parked_replies = session.exec(
        select(Dispatch).where(Dispatch.status == "parked", Dispatch.kind == SOURCE_REPLY)
    ).all()
    for row in parked_replies:
        reply = session.get(Reply, row.ref_id) if row.ref_id is not None else None
        latest = session.exec(
            select(Reply.id).where(Reply.mention_id == reply.mention_id)
            .order_by(col(Reply.id).desc())
        ).first() if reply is not None else None
        if reply is not None and latest == reply.id and session.execute(
            update(Reply).where(col(Reply.id) == reply.id, col(Reply.status) == "failed")
            .values(status="queued", done_at=None)
        ).rowcount == 1:  # type: ignore[attr-defined]
            revived.append(reply.mention_id)
            continue
        row.status, row.lease_owner, row.lease_until = "cancelled", None, None
        row.last_error = "not sent again: the reply was posted by hand or replaced"
        session.add(row)
    session.flush()
    result = session.execute(
        update(Dispatch).where(col(Dispatch.status) == "parked")
        .values(status="pending", attempts=0, next_attempt_at=now, lease_owner=None,
                lease_until=None)
    )
    return int(result.rowcount), revived  # type: ignore[attr-defined]


def get_dispatch(*, session: Session, item_id: int) -> Dispatch | None:
    return session.get(Dispatch, item_id)


def dispatches(*, session: Session, mention_id: int | None = None) -> list[Dispatch]:
    query = select(Dispatch)
    if mention_id is not None:
        query = query.where(Dispatch.mention_id == mention_id)
    return list(session.exec(query.order_by(col(Dispatch.id))))
