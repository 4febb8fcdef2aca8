"""Tables of the engagement workflow (migration 0004).

The milestones of an engagement (first claim, first response, escalation,
resolution) are columns on ``engagement`` so that conflicting actions are
single conditional updates of one row; everything else lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.tables import UTCDateTime, utcnow


class Reply(SQLModel, table=True):
    """A reply drafted on a card: sent through the source, or copied by staff.

    ``status``: ``draft`` (copy-ready, awaiting the staff member's confirmation),
    ``queued`` (carebot sends it through the source), ``sent``, ``confirmed``
    (staff posted it themselves) or ``failed`` (the source refused; staff may copy it).
    """

    __tablename__ = "reply"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    author: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="draft", max_length=16)
    external_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))
    done_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Escalation(SQLModel, table=True):
    """One Social 911 escalation of a mention, and the CRM case it opened."""

    __tablename__ = "escalation"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    escalated_by: str = Field(max_length=64)
    automatic: bool = False
    severity: str = Field(max_length=16)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    context: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    case_id: str | None = Field(default=None, max_length=255)
    crm_status: str = Field(default="none", max_length=16)  # none|pending|created|parked
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))


class AfterActionReview(SQLModel, table=True):
    """The escalator's review of an escalation, asked for when it is resolved."""

    __tablename__ = "after_action_review"

    id: int | None = Field(default=None, primary_key=True)
    escalation_id: int = Field(foreign_key="escalation.id", unique=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    reviewer: str = Field(max_length=64)
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    without_intervention: str = Field(sa_column=Column(Text, nullable=False))
    could_be_better: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    appropriate: bool
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))


class Dispatch(SQLModel, table=True):
    """Durable queue of outbound HTTP work (CRM case webhooks, source replies).

    Recorded in the transaction of the state change that causes it; a worker
    leases due rows, sends, and records the outcome, retrying with backoff.
    """

    __tablename__ = "dispatch"
    __table_args__ = (Index("ix_dispatch_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # crm_case | source_reply
    mention_id: int | None = Field(default=None, foreign_key="mention.id", index=True)
    ref_id: int | None = None  # escalation.id or reply.id
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending|sent|parked
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow,
                                      sa_column=Column(UTCDateTime(), nullable=False))
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None,
                                         sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Conversion(SQLModel, table=True):
    """Sentiment before and after an engagement (one per mention; re-tagging replaces it)."""

    __tablename__ = "conversion"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", unique=True)
    before: str = Field(max_length=16)
    after: str = Field(max_length=16)
    score: int
    agent: str = Field(max_length=64, index=True)
    department: str | None = Field(default=None, max_length=64)
    tagged_by: str = Field(max_length=64)
    tagged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class InternalNote(SQLModel, table=True):
    """Internal discussion of a mention: notes and staff replies in the card's thread.

    Never sent to the customer.
    """

    __tablename__ = "internal_note"
    __table_args__ = (UniqueConstraint("channel", "ts", name="uq_internal_note_message"),)

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    author: str = Field(max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(max_length=16)  # note | thread
    channel: str | None = Field(default=None, max_length=64)
    ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime(), nullable=False))


class MentionFlag(SQLModel, table=True):
    """A flag staff set on a mention: ``star`` (weekly digest) or ``kb`` (KB candidate)."""

    __tablename__ = "mention_flag"
    __table_args__ = (UniqueConstraint("mention_id", "flag", name="uq_mention_flag"),)

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    flag: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class TrainingFeedback(SQLModel, table=True):
    """A human correction of a classification: training data for the classifier."""

    __tablename__ = "training_feedback"

    id: int | None = Field(default=None, primary_key=True)
    mention_id: int = Field(foreign_key="mention.id", index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    lang: str | None = Field(default=None, max_length=16)
    predicted: str | None = Field(default=None, max_length=16)
    category: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
