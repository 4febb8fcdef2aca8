"""Engagement workflow state: milestones, replies, notes, flags, conversions.

Every change of an engagement's state is one conditional ``UPDATE`` of its
``engagement`` row, so conflicting actions (claim against resolve, two
resolves) serialise on that row and exactly one of them wins. ``lock`` takes
the same row lock up front for units of work that read before they write
(reclassify), which keeps them consistent on PostgreSQL's READ COMMITTED too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage import outbox
from storage.tables import Engagement, Outbox, SlackPost
from storage.workflow_tables import Conversion, InternalNote, MentionFlag, Reply

# -- engagement milestones ---------------------------------------------------


def lock(*, session: Session, mention_id: int) -> bool:
    """Take the engagement row's write lock for this unit of work (False: no row)."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id)
        .values(version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def claim_if_unclaimed(*, session: Session, mention_id: int, user: str, now: datetime) -> bool:
    """Claim for ``user`` when nobody holds the mention (acting on it implies claiming it)."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id, col(Engagement.claimed_by).is_(None))
        .values(claimed_by=user, claimed_at=now,
                first_claimed_at=func.coalesce(Engagement.first_claimed_at, now),
                version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def try_resolve(*, session: Session, mention_id: int, user: str, now: datetime) -> bool:
    """Resolve an open mention; an unclaimed one counts as claimed by the resolver."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id, col(Engagement.resolved_at).is_(None))
        .values(resolved_at=now, resolved_by=user,
                claimed_by=func.coalesce(Engagement.claimed_by, user),
                claimed_at=func.coalesce(Engagement.claimed_at, now),
                first_claimed_at=func.coalesce(Engagement.first_claimed_at, now),
                version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def try_reopen(*, session: Session, mention_id: int) -> bool:
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id,
               col(Engagement.resolved_at).is_not(None))
        .values(resolved_at=None, resolved_by=None, version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def try_escalate(*, session: Session, mention_id: int, user: str, now: datetime) -> bool:
    """Mark an open, not yet escalated mention escalated."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id,
               col(Engagement.escalated_at).is_(None), col(Engagement.resolved_at).is_(None))
        .values(escalated_at=now, escalated_by=user, version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def record_first_response(*, session: Session, mention_id: int, user: str,
                          now: datetime) -> bool:
    """Record the first response (later responses keep the first time)."""
    result = session.execute(
        update(Engagement)
        .where(col(Engagement.mention_id) == mention_id,
               col(Engagement.first_response_at).is_(None))
        .values(first_response_at=now, responded_by=user, version=Engagement.version + 1)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


# -- replies -----------------------------------------------------------------


def add_reply(*, session: Session, mention_id: int, author: str, text: str, status: str,
              now: datetime) -> Reply:
    reply = Reply(mention_id=mention_id, author=author, text=text, status=status, created_at=now)
    session.add(reply)
    session.flush()
    return reply


def latest_reply(*, session: Session, mention_id: int) -> Reply | None:
    return session.exec(
        select(Reply).where(Reply.mention_id == mention_id).order_by(col(Reply.id).desc())
    ).first()


def get_reply(*, session: Session, reply_id: int) -> Reply | None:
    return session.get(Reply, reply_id)


def finish_reply(*, session: Session, reply_id: int, from_status: str, to_status: str,
                 now: datetime, external_id: str | None = None) -> bool:
    """Move a reply from one status to the next; False if it was not in ``from_status``."""
    values: dict[str, object] = {"status": to_status, "done_at": now}
    if external_id is not None:
        values["external_id"] = external_id
    result = session.execute(
        update(Reply).where(col(Reply.id) == reply_id, col(Reply.status) == from_status)
        .values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


# -- notes and thread discussion ---------------------------------------------


def add_note(*, session: Session, mention_id: int, author: str, text: str, kind: str,
             now: datetime, channel: str | None = None, ts: str | None = None) -> bool:
    """Store internal discussion; a thread message already stored (same ts) is skipped."""
    if ts is not None and session.exec(
        select(InternalNote.id).where(InternalNote.channel == channel, InternalNote.ts == ts)
    ).first() is not None:
        return False
    session.add(InternalNote(mention_id=mention_id, author=author, text=text, kind=kind,
                             channel=channel, ts=ts, created_at=now))
    session.flush()
    return True


def notes_for(*, session: Session, mention_id: int) -> list[InternalNote]:
    return list(session.exec(
        select(InternalNote).where(InternalNote.mention_id == mention_id)
        .order_by(col(InternalNote.id))
    ))


def count_notes(*, session: Session, mention_id: int) -> int:
    return int(session.exec(
        select(func.count()).select_from(InternalNote)
        .where(InternalNote.mention_id == mention_id)
    ).one())


def post_by_ts(*, session: Session, channel: str, ts: str) -> SlackPost | None:
    """The card posted as message ``ts`` in ``channel``."""
    return session.exec(
        select(SlackPost).where(SlackPost.channel == channel, SlackPost.ts == ts)
    ).first()


# -- cards moving between channels -------------------------------------------


def move_card(*, session: Session, mention_id: int, channel: str, priority: int,
              now: datetime) -> SlackPost:
    """Make ``channel`` the card's current home: post there (once) and retire the others.

    A card that has not gone out yet to a channel it is leaving is not posted
    at all; one already posted is updated to point to the new home.
    """
    post = outbox.enqueue_post_card(session=session, mention_id=mention_id, channel=channel,
                                    priority=priority, now=now)
    # enqueue_post_card reuses an existing post of the channel (moved back) as is.
    for other in session.exec(select(SlackPost).where(SlackPost.mention_id == mention_id)):
        current = other.id == post.id
        if other.is_current != current:
            other.is_current = current
            session.add(other)
    session.flush()
    unsent = session.exec(
        select(Outbox.id, Outbox.post_id).where(
            Outbox.mention_id == mention_id, Outbox.kind == outbox.POST_CARD,
            Outbox.status == "pending", Outbox.post_id != post.id,
            col(Outbox.lease_owner).is_(None))
    ).all()
    for item_id, post_id in unsent:
        # Never posted: cancel it unless a deliverer leased it meanwhile (the
        # conditional update waits for that lease and re-checks), and drop the
        # post itself so no card update waits for its ts.
        cancelled = session.execute(
            update(Outbox)
            .where(col(Outbox.id) == item_id, col(Outbox.status) == "pending",
                   col(Outbox.lease_owner).is_(None))
            .values(status="cancelled", post_id=None, last_error="card moved before it was posted")
        ).rowcount == 1  # type: ignore[attr-defined]
        stale = session.get(SlackPost, post_id) if post_id is not None and cancelled else None
        if stale is None or stale.ts is not None:
            continue
        session.execute(
            update(Outbox).where(col(Outbox.post_id) == stale.id, col(Outbox.status) == "pending")
            .values(status="cancelled", post_id=None, last_error="card moved before it was posted")
        )
        session.execute(update(Outbox).where(col(Outbox.post_id) == stale.id)
                        .values(post_id=None))
        session.delete(stale)
        session.flush()
    if post.ts is not None:
        # A returning card is already posted there: refresh it back into a full card.
        outbox.enqueue_card_update(session=session, mention_id=mention_id, now=now)
    return post


# -- flags -------------------------------------------------------------------


def toggle_flag(*, session: Session, mention_id: int, flag: str, actor: str,
                now: datetime) -> bool:
    """Set ``flag`` if unset, clear it if set. Returns whether it is now set."""
    existing = session.exec(
        select(MentionFlag).where(MentionFlag.mention_id == mention_id, MentionFlag.flag == flag)
    ).first()
    if existing is not None:
        session.delete(existing)
        session.flush()
        return False
    session.add(MentionFlag(mention_id=mention_id, flag=flag, actor=actor, created_at=now))
    session.flush()
    return True


def flags_for(*, session: Session, mention_id: int) -> dict[str, str]:
    """Flags set on a mention: flag -> who set it."""
    rows = session.exec(select(MentionFlag).where(MentionFlag.mention_id == mention_id)).all()
    return {row.flag: row.actor for row in rows}


def flagged(*, session: Session, flag: str, since: datetime | None = None,
            until: datetime | None = None) -> list[MentionFlag]:
    """Mentions flagged ``flag`` (``star``: for the weekly digest; ``kb``: KB candidates)."""
    query = select(MentionFlag).where(MentionFlag.flag == flag)
    if since is not None:
        query = query.where(col(MentionFlag.created_at) >= since)
    if until is not None:
        query = query.where(col(MentionFlag.created_at) < until)
    return list(session.exec(query.order_by(col(MentionFlag.created_at))))


# -- conversions -------------------------------------------------------------


def upsert_conversion(*, session: Session, mention_id: int, before: str, after: str, score: int,
                      agent: str, department: str | None, tagged_by: str,
                      now: datetime) -> Conversion:
    row = session.exec(select(Conversion).where(Conversion.mention_id == mention_id)).first()
    if row is None:
        row = Conversion(mention_id=mention_id, before=before, after=after, score=score,
                         agent=agent, department=department, tagged_by=tagged_by, tagged_at=now)
    else:
        row.before, row.after, row.score = before, after, score
        row.agent, row.department, row.tagged_by, row.tagged_at = agent, department, tagged_by, now
    session.add(row)
    session.flush()
    return row


def conversion_for(*, session: Session, mention_id: int) -> Conversion | None:
    return session.exec(select(Conversion).where(Conversion.mention_id == mention_id)).first()


def conversions(*, session: Session, since: datetime | None = None,
                until: datetime | None = None) -> list[Conversion]:
    query = select(Conversion)
    if since is not None:
        query = query.where(col(Conversion.tagged_at) >= since)
    if until is not None:
        query = query.where(col(Conversion.tagged_at) < until)
    return list(session.exec(query.order_by(col(Conversion.tagged_at))))
