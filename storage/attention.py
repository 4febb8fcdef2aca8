"""Per-mention attention state: priority, SLA clock, and notifications sent.

Every notification (SLA warning, breach, alert, automatic escalation) is
stamped here with a single conditional ``UPDATE .. WHERE <stamp> IS NULL``;
the one caller whose update changes a row sends it. That makes each fire
exactly once across replicas, overlapping job runs and restarts, without any
in-memory flag.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, and_, func, or_, update
from sqlmodel import Field, Session, SQLModel, col, select

from storage.mentions import open_work
from storage.people import normalize_handle
from storage.tables import AuditLog, Engagement, Mention, SlackPost, UTCDateTime, utcnow

#: Audit actions that count as a first response (they stop the SLA clock).
ANSWER_ACTIONS = ("responded", "resolved", "marked_noise")
#: "Mark noise" is recorded as a reclassification to noise; it stops the clock too.
RECLASSIFIED = "reclassified"
NOISE = "noise"
#: Audit actions that mean a human engaged with the author (starts monitoring).
ENGAGED_ACTIONS = ("claimed", "responded")
#: Audit actions that mean the mention has been escalated already. Not
#: ``auto_escalated``: that records the attempt, whose stamp is cleared when the
#: escalation fails so that the next check retries it.
ESCALATED_ACTIONS = ("escalated",)

STAMPS = ("warned_at", "breached_at", "alerted_at", "escalated_at")


class MentionAttention(SQLModel, table=True):
    """Priority and SLA state of one routed mention."""

    __tablename__ = "mention_attention"
    __table_args__ = (
        Index("ix_attention_priority", "priority"),
        Index("ix_attention_open_due", "answered_at", "due_at"),
    )

    mention_id: int = Field(foreign_key="mention.id", primary_key=True)
    priority: int = 0
    factors: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    watch_lists: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tier: str | None = Field(default=None, max_length=32)
    entitled: bool = False
    sla_minutes: int | None = None
    sla_started_at: datetime = Field(default_factory=utcnow,
                                     sa_column=Column(UTCDateTime(), nullable=False))
    warn_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    due_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    answered_at: datetime | None = Field(default=None,
                                         sa_column=Column(UTCDateTime(), nullable=True))
    warned_at: datetime | None = Field(default=None,
                                       sa_column=Column(UTCDateTime(), nullable=True))
    breached_at: datetime | None = Field(default=None,
                                         sa_column=Column(UTCDateTime(), nullable=True))
    alerted_at: datetime | None = Field(default=None,
                                        sa_column=Column(UTCDateTime(), nullable=True))
    escalated_at: datetime | None = Field(default=None,
                                          sa_column=Column(UTCDateTime(), nullable=True))
    follow_up_of: int | None = Field(default=None, foreign_key="mention.id")


def get(*, session: Session, mention_id: int) -> MentionAttention | None:
    return session.get(MentionAttention, mention_id)


def save_routing(*, session: Session, mention_id: int, priority: int, factors: dict[str, Any],
                 watch_lists: list[str], tier: str | None, entitled: bool,
                 sla_minutes: int | None, started_at: datetime, warn_at: datetime | None,
                 due_at: datetime | None, follow_up_of: int | None) -> MentionAttention:
    """Record priority and SLA target at (re)routing; notification stamps are kept."""
    row = session.get(MentionAttention, mention_id)
    if row is None:
        row = MentionAttention(mention_id=mention_id, sla_started_at=started_at)
    row.priority = priority
    row.factors = factors
    row.watch_lists = watch_lists
    row.tier = tier
    row.entitled = entitled
    row.sla_minutes = sla_minutes
    row.warn_at = warn_at
    row.due_at = due_at
    if follow_up_of is not None:
        row.follow_up_of = follow_up_of
    session.add(row)
    session.flush()
    return row


def try_stamp(*, session: Session, mention_id: int, stamp: str, now: datetime) -> bool:
    """Set ``stamp`` (one of :data:`STAMPS`) if unset. True for exactly one caller."""
    if stamp not in STAMPS:
        raise ValueError(f"unknown stamp {stamp!r}")
    column = getattr(MentionAttention, stamp)
    result = session.execute(
        update(MentionAttention)
        .where(col(MentionAttention.mention_id) == mention_id, col(column).is_(None))
        .values({stamp: now})
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def clear_stamp(*, session: Session, mention_id: int, stamp: str, value: datetime) -> None:
    """Undo a stamp this caller set (its side effect failed and should be retried)."""
    column = getattr(MentionAttention, stamp)
    session.execute(
        update(MentionAttention)
        .where(col(MentionAttention.mention_id) == mention_id, col(column) == value)
        .values({stamp: None})
    )


def mark_answered(*, session: Session, mention_id: int, at: datetime) -> bool:
    """Stop the SLA clock at the first response (later responses change nothing)."""
    result = session.execute(
        update(MentionAttention)
        .where(col(MentionAttention.mention_id) == mention_id,
               col(MentionAttention.answered_at).is_(None))
        .values(answered_at=at)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def sync_answers_from_audit(*, session: Session) -> int:
    """Stop the clock of open mentions whose audit log shows a first response."""
    rows = session.execute(
        select(AuditLog.mention_id, func.min(AuditLog.at))
        .join(MentionAttention, col(MentionAttention.mention_id) == col(AuditLog.mention_id))
        .where(col(MentionAttention.answered_at).is_(None),
               or_(col(AuditLog.action).in_(ANSWER_ACTIONS),
                   and_(col(AuditLog.action) == RECLASSIFIED,
                        col(AuditLog.detail)["to"].as_string() == NOISE)))
        .group_by(col(AuditLog.mention_id))
    ).all()
    return sum(mark_answered(session=session, mention_id=int(mid), at=at) for mid, at in rows)


def due_for(*, session: Session, stamp: str, boundary: str, now: datetime,
            limit: int = 500) -> list[MentionAttention]:
    """Open mentions whose ``boundary`` time (warn_at/due_at) has come and ``stamp`` is unset."""
    boundary_col = getattr(MentionAttention, boundary)
    stamp_col = getattr(MentionAttention, stamp)
    return list(session.exec(
        select(MentionAttention)
        .where(col(MentionAttention.answered_at).is_(None), col(boundary_col).is_not(None),
               col(boundary_col) <= now, col(stamp_col).is_(None))
        .order_by(col(MentionAttention.priority).desc(), col(MentionAttention.mention_id))
        .limit(limit)
    ))


def escalation_candidates(*, session: Session, started_before: datetime, min_priority: int,
                          categories: Collection[str], limit: int = 100
                          ) -> list[MentionAttention]:
    """Entitled, unanswered, not yet escalated mentions older than the escalation time,
    in one of ``categories`` and not positive."""
    already = select(AuditLog.mention_id).where(col(AuditLog.action).in_(ESCALATED_ACTIONS),
                                                col(AuditLog.mention_id).is_not(None))
    return list(session.exec(
        select(MentionAttention)
        .join(Mention, col(Mention.id) == col(MentionAttention.mention_id))
        .where(col(Mention.category).in_(list(categories)),
               or_(col(Mention.sentiment).is_(None), col(Mention.sentiment) != "positive"))
        .where(col(MentionAttention.entitled), col(MentionAttention.answered_at).is_(None),
               col(MentionAttention.escalated_at).is_(None),
               col(MentionAttention.priority) >= min_priority,
               col(MentionAttention.sla_started_at) <= started_before,
               col(MentionAttention.mention_id).not_in(already))
        .order_by(col(MentionAttention.priority).desc())
        .limit(limit)
    ))


#: Audit actions that settle an automatic escalation stamped on a mention: it was
#: escalated (by carebot or a person), posted without a workflow, or refused for good.
ESCALATION_SETTLED = (*ESCALATED_ACTIONS, "auto_escalation_posted", "auto_escalation_refused")


def stranded_escalations(*, session: Session, stamped_before: datetime) -> list[MentionAttention]:
    """Mentions stamped for automatic escalation before ``stamped_before`` whose
    escalation never happened: the process that stamped them died before escalating
    (the stamp commits first, so that one replica alone escalates). Unanswered ones only."""
    settled = select(AuditLog.mention_id).where(col(AuditLog.action).in_(ESCALATION_SETTLED),
                                                col(AuditLog.mention_id).is_not(None))
    return list(session.exec(
        select(MentionAttention)
        .where(col(MentionAttention.escalated_at).is_not(None),
               col(MentionAttention.escalated_at) <= stamped_before,
               col(MentionAttention.answered_at).is_(None),
               col(MentionAttention.mention_id).not_in(settled))
        .order_by(col(MentionAttention.mention_id))
    ))


def engaged_original(*, session: Session, source: str, author: str, exclude_id: int,
                     since: datetime) -> tuple[int, SlackPost] | None:
    """The author's most recently engaged mention since ``since`` that has a posted card."""
    handle = normalize_handle(author)
    exact, same_author = _author_is(handle)
    query = (
        select(AuditLog.mention_id, SlackPost, Mention.author)
        .join(Mention, col(Mention.id) == col(AuditLog.mention_id))
        .join(SlackPost, and_(col(SlackPost.mention_id) == col(Mention.id),
                              col(SlackPost.is_current)))
        .where(Mention.source == source, same_author,
               col(Mention.id) != exclude_id, col(AuditLog.action).in_(ENGAGED_ACTIONS),
               col(AuditLog.at) >= since, col(SlackPost.ts).is_not(None))
        .order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
    )
    for mention_id, post, who in session.execute(query.limit(1) if exact else query).all():
        if normalize_handle(who) == handle:
            return int(mention_id), post
    return None


def open_mentions_of(*, session: Session, handle: str, source: str | None
                     ) -> list[Mention]:
    """An author's posted mentions still waiting for a first response and unresolved
    (``source`` None: on any source), oldest first."""
    handle = normalize_handle(handle)
    query = (
        select(Mention)
        .join(MentionAttention, col(MentionAttention.mention_id) == col(Mention.id))
        .join(Engagement, col(Engagement.mention_id) == col(Mention.id))
        .where(Mention.stage == "routed", col(Mention.channel).is_not(None),
               col(MentionAttention.answered_at).is_(None), open_work(),
               _author_is(handle)[1])
        .order_by(col(Mention.id))
    )
    if source is not None:
        query = query.where(func.lower(Mention.source) == source.lower())
    return [m for m in session.exec(query).all() if normalize_handle(m.author) == handle]


def _author_is(handle: str) -> tuple[bool, Any]:
    """(exact, SQL condition) for mentions by ``handle`` (normalised). SQL lower() folds
    ASCII only (SQLite; PostgreSQL under the C collation): for a handle with a non-ASCII
    letter the condition only narrows by length (not exact), and the caller compares
    :func:`storage.people.normalize_handle` of each row."""
    bare = func.ltrim(Mention.author, "@")
    if handle.isascii():
        return True, func.lower(bare) == handle
    return False, func.length(bare) == len(handle)


def _open_filters(claimed_by: str | None, channels: Collection[str] | None) -> list[Any]:
    filters: list[Any] = [Mention.stage == "routed", col(Mention.channel).is_not(None),
                          open_work()]
    if claimed_by is None:
        filters += [col(Engagement.claimed_by).is_(None),
                    col(MentionAttention.answered_at).is_(None)]
    else:
        filters.append(Engagement.claimed_by == claimed_by)
    if channels is not None:
        filters.append(col(Mention.channel).in_(list(channels)))
    return filters


def open_queue(*, session: Session, claimed_by: str | None, limit: int,
               channels: Collection[str] | None = None) -> list[tuple[Mention, MentionAttention]]:
    """Routed, posted mentions with their attention state, by priority.

    ``claimed_by=None`` lists unclaimed mentions that are not yet answered;
    a user id lists the mentions that user holds. Either way, only what still asks
    for work: resolved mentions and those a person marked noise are left out.
    """
    query = (
        select(Mention, MentionAttention)
        .join(MentionAttention, col(MentionAttention.mention_id) == col(Mention.id))
        .join(Engagement, col(Engagement.mention_id) == col(Mention.id))
        .where(*_open_filters(claimed_by, channels))
        .order_by(col(MentionAttention.priority).desc(), col(Mention.id).desc())
    )
    return [(m, a) for m, a in session.exec(query.limit(limit)).all()]


def open_count(*, session: Session, claimed_by: str | None) -> int:
    """How many mentions :func:`open_queue` would list without a limit."""
    query = (
        select(func.count()).select_from(Mention)
        .join(MentionAttention, col(MentionAttention.mention_id) == col(Mention.id))
        .join(Engagement, col(Engagement.mention_id) == col(Mention.id))
        .where(*_open_filters(claimed_by, None))
    )
    return int(session.exec(query).one())


def sla_counts(*, session: Session, now: datetime) -> dict[str, int]:
    """Unanswered mentions with a target, by SLA status (ok / warning / breached)."""
    open_rows = and_(col(MentionAttention.answered_at).is_(None),
                     col(MentionAttention.due_at).is_not(None))
    breached = session.exec(select(func.count()).select_from(MentionAttention)
                            .where(open_rows, col(MentionAttention.due_at) <= now)).one()
    warning = session.exec(select(func.count()).select_from(MentionAttention)
                           .where(open_rows, col(MentionAttention.due_at) > now,
                                  or_(col(MentionAttention.warn_at) <= now))).one()
    total = session.exec(select(func.count()).select_from(MentionAttention)
                         .where(open_rows)).one()
    return {"ok": int(total) - int(breached) - int(warning), "warning": int(warning),
            "breached": int(breached)}
